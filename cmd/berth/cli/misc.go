package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/supervisor"
)

func newTopCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "top [SERVICES...]",
		Short: "Display the running processes",
		RunE: func(cmd *cobra.Command, args []string) error {
			proj, _, err := g.projectName(cmd.Context())
			if err != nil {
				return err
			}
			recs, _, err := g.records(cmd.Context(), proj)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, r := range recs {
				if len(args) > 0 && !slices.Contains(args, r.Service) || r.State.Status != supervisor.StatusRunning {
					continue
				}
				ctr, err := runtime.Load(g.paths().RuntimeRoot(), r.ID)
				if err != nil {
					continue
				}
				pids, err := ctr.Processes()
				if err != nil {
					return err
				}
				sort.Ints(pids)
				fmt.Fprintln(out, r.Name)
				tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
				fmt.Fprintln(tw, "UID\tPID\tPPID\tCMD")
				for _, pid := range pids {
					uid, ppid := procStatus(pid)
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", uid, pid, ppid, procCmdline(pid))
				}
				tw.Flush()
				fmt.Fprintln(out)
			}
			return nil
		},
	}
}

// procStatus reads a process's real uid and parent PID from /proc.
func procStatus(pid int) (uid, ppid string) {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "Uid":
			uid = f[0]
		case "PPid":
			ppid = f[0]
		}
	}
	return uid, ppid
}

func procCmdline(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

func newWaitCommand(g *globals) *cobra.Command {
	var downProject bool
	cmd := &cobra.Command{
		Use:   "wait SERVICE [SERVICE...] [OPTIONS]",
		Short: "Block until containers of all (or specified) services stop.",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			proj, _, err := g.projectName(ctx)
			if err != nil {
				return err
			}
			first := -1
			for {
				recs, err := supervisor.LoadRecords(g.paths(), proj)
				if err != nil {
					return err
				}
				waiting := false
				for _, r := range recs {
					if !slices.Contains(args, r.Service) {
						continue
					}
					switch r.State.Status {
					case supervisor.StatusExited, supervisor.StatusDead:
						if first < 0 {
							first = r.State.ExitCode
						}
					default:
						waiting = true
					}
				}
				if !waiting {
					break
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
			if first < 0 {
				first = 0
			}
			fmt.Fprintln(cmd.OutOrStdout(), first)
			if downProject {
				c, err := supervisor.Connect(ctx, g.paths(), proj)
				if err != nil {
					return err
				}
				if err := withSteps(cmd.ErrOrStderr(), func(progress func(supervisor.Event)) error {
					return c.Down(ctx, supervisor.DownRequest{}, progress)
				}); err != nil {
					return err
				}
			}
			if first != 0 {
				return &exitError{code: first}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&downProject, "down-project", false, "Drops project when the first container stops")
	return cmd
}

func newLsCommand(g *globals) *cobra.Command {
	var all, quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "ls [OPTIONS]",
		Short: "List running compose projects",
		RunE: func(cmd *cobra.Command, args []string) error {
			recs, err := supervisor.LoadRecords(g.paths(), "")
			if err != nil {
				return err
			}
			type proj struct {
				Name        string `json:"Name"`
				Status      string `json:"Status"`
				ConfigFiles string `json:"ConfigFiles"`
				counts      map[string]int
			}
			byName := map[string]*proj{}
			var names []string
			for _, r := range recs {
				p := byName[r.Project]
				if p == nil {
					p = &proj{Name: r.Project, counts: map[string]int{}, ConfigFiles: r.Labels["com.docker.compose.project.config_files"]}
					byName[r.Project] = p
					names = append(names, r.Project)
				}
				p.counts[r.State.Status]++
			}
			var list []*proj
			for _, n := range names {
				p := byName[n]
				if !all && p.counts[supervisor.StatusRunning] == 0 {
					continue
				}
				var parts []string
				for _, st := range []string{"running", "paused", "restarting", "created", "exited", "dead"} {
					if c := p.counts[st]; c > 0 {
						parts = append(parts, fmt.Sprintf("%s(%d)", st, c))
					}
				}
				p.Status = strings.Join(parts, ", ")
				list = append(list, p)
			}
			out := cmd.OutOrStdout()
			switch {
			case quiet:
				for _, p := range list {
					fmt.Fprintln(out, p.Name)
				}
			case format == "json":
				b, _ := json.Marshal(list)
				fmt.Fprintln(out, string(b))
			default:
				tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATUS\tCONFIG FILES")
				for _, p := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.Status, p.ConfigFiles)
				}
				tw.Flush()
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Show all stopped Compose projects")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display project names")
	cmd.Flags().StringVar(&format, "format", "table", "Format the output. Values: [table | json]")
	return cmd
}

func newEventsCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "events [OPTIONS] [SERVICE...]",
		Short: "Receive real time events from containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			proj, _, err := g.projectName(ctx)
			if err != nil {
				return err
			}
			c, err := supervisor.Connect(ctx, g.paths(), proj)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			return c.Events(ctx, func(e supervisor.Event) {
				if len(args) > 0 && !slices.Contains(args, e.Service) {
					return
				}
				if asJSON {
					b, _ := json.Marshal(map[string]any{
						"time": e.Time, "type": "container", "action": e.Action, "id": e.ID, "service": e.Service,
						"attributes": map[string]string{"name": e.Container, "exitCode": strconv.Itoa(e.ExitCode), "health": e.Health, "error": e.Message},
					})
					fmt.Fprintln(out, string(b))
					return
				}
				attrs := "name=" + e.Container
				if e.Action == "die" {
					attrs += ", exitCode=" + strconv.Itoa(e.ExitCode)
				}
				if e.Health != "" {
					attrs += ", health=" + e.Health
				}
				if e.Action == "error" {
					attrs += ", error=" + strconv.Quote(e.Message)
				}
				fmt.Fprintf(out, "%s container %s %s (%s)\n", e.Time.Local().Format("2006-01-02 15:04:05.000000"), e.Action, e.ID, attrs)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "Output events as a stream of json objects")
	return cmd
}
