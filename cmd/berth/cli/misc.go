package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

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
			recs, c, err := g.records(cmd.Context(), proj)
			if err != nil || len(recs) == 0 {
				return err
			}
			res, err := c.Top(cmd.Context(), args)
			if err != nil {
				return err
			}
			printTop(cmd.OutOrStdout(), res)
			return nil
		},
	}
}

// printTop prints each container's processes as compose does: its name,
// a table, a blank line.
func printTop(out io.Writer, res []supervisor.TopResult) {
	for _, r := range res {
		fmt.Fprintln(out, r.Name)
		tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
		fmt.Fprintln(tw, "UID\tPID\tPPID\tCMD")
		for _, p := range r.Processes {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.UID, p.PID, p.PPID, p.Cmd)
		}
		tw.Flush()
		fmt.Fprintln(out)
	}
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
			c, err := supervisor.Connect(ctx, g.paths(), proj)
			if err != nil {
				return err
			}
			first, err := c.Wait(ctx, supervisor.WaitStopped, args)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), first)
			if downProject {
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
	var filters []string
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
			nameFilters, err := parseLsFilters(filters)
			if err != nil {
				return err
			}
			var list []*proj
			for _, n := range names {
				p := byName[n]
				if !all && p.counts[supervisor.StatusRunning] == 0 {
					continue
				}
				if !matchesName(nameFilters, n) {
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
			case isTemplate(format):
				return templateTable(out, format, list)
			case format != "table" && format != "":
				return formatError(format)
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
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "Filter output based on conditions provided")
	return cmd
}

// parseLsFilters reads ls --filter KEY=VALUE; compose knows only name.
func parseLsFilters(filters []string) ([]string, error) {
	var names []string
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter (expected name=value)")
		}
		if k != "name" {
			return nil, fmt.Errorf("invalid filter '%s'", k)
		}
		names = append(names, v)
	}
	return names, nil
}

// matchesName is docker's name filter: the name contains one of the
// values; no value, no filtering.
func matchesName(values []string, name string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		if strings.Contains(name, v) {
			return true
		}
	}
	return false
}

func newEventsCommand(g *globals) *cobra.Command {
	var asJSON bool
	var since, until string
	cmd := &cobra.Command{
		Use:   "events [OPTIONS] [SERVICE...]",
		Short: "Receive real time events from containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			from, err := parseTime(since)
			if err != nil {
				return fmt.Errorf("invalid --since: %w", err)
			}
			to, err := parseTime(until)
			if err != nil {
				return fmt.Errorf("invalid --until: %w", err)
			}
			proj, _, err := g.projectName(ctx)
			if err != nil {
				return err
			}
			c, err := supervisor.Connect(ctx, g.paths(), proj)
			if err != nil {
				return err
			}
			// --since replays the project's journal from then on, and an
			// --until alone replays it from its start, as docker does;
			// the live events follow until --until.
			o := supervisor.EventsOptions{Replay: since != "" || until != "", Since: from, Until: to}
			out := cmd.OutOrStdout()
			return c.EventsRange(ctx, o, nil, func(e supervisor.Event) {
				if len(args) > 0 && !slices.Contains(args, e.Service) || e.Time.Before(from) {
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
	cmd.Flags().StringVar(&since, "since", "", "Show all events created since timestamp")
	cmd.Flags().StringVar(&until, "until", "", "Stream events until this timestamp")
	return cmd
}
