package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/supervisor"
)

type psFlags struct {
	all, quiet, services bool
	noTrunc, orphans     bool
	status, filter       []string
	format               string
	// known are the project's services, for --orphans=false; nil when
	// the compose file is not at hand.
	known map[string]bool
}

func newPsCommand(g *globals) *cobra.Command {
	f := &psFlags{}
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] [SERVICE...]",
		Short: "List containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			proj, p, err := g.projectName(cmd.Context())
			if err != nil {
				return err
			}
			if err := checkServices(p, args); err != nil {
				return err
			}
			recs, _, err := g.records(cmd.Context(), proj)
			if err != nil {
				return err
			}
			if err := parsePsFilters(f); err != nil {
				return err
			}
			if p != nil {
				f.known = map[string]bool{}
				for name := range p.Services {
					f.known[name] = true
				}
				for name := range p.DisabledServices {
					f.known[name] = true
				}
			}
			return printPs(cmd.OutOrStdout(), filterPs(recs, args, f), f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.all, "all", "a", false, "Show all stopped containers (including those created by the run command)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "Only display IDs")
	fl.BoolVar(&f.services, "services", false, "Display services")
	fl.StringArrayVar(&f.status, "status", nil, "Filter services by status. Values: [paused | restarting | removing | running | dead | created | exited]")
	fl.StringVar(&f.format, "format", "table", `Format output using a custom template:
'table':            Print output in table format with column headers (default)
'table TEMPLATE':   Print output in table format using the given Go template
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template.
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates`)
	fl.StringArrayVar(&f.filter, "filter", nil, "Filter services by a property (supported filters: status)")
	fl.BoolVar(&f.noTrunc, "no-trunc", false, "Don't truncate output")
	fl.BoolVar(&f.orphans, "orphans", true, "Include orphaned services (not declared by project)")
	return cmd
}

// parsePsFilters reads --filter KEY=VALUE; compose knows only status.
func parsePsFilters(f *psFlags) error {
	for _, fl := range f.filter {
		k, v, ok := strings.Cut(fl, "=")
		if !ok {
			return fmt.Errorf("arguments to --filter should be in form KEY=VAL")
		}
		if k != "status" {
			return fmt.Errorf("unknown filter %s", k)
		}
		f.status = append(f.status, v)
	}
	return nil
}

func filterPs(recs []supervisor.Record, services []string, f *psFlags) []supervisor.Record {
	want := map[string]bool{}
	for _, s := range services {
		want[s] = true
	}
	var out []supervisor.Record
	for _, r := range recs {
		if len(want) > 0 && !want[r.Service] {
			continue
		}
		if !f.orphans && f.known != nil && !f.known[r.Service] {
			continue
		}
		if len(f.status) > 0 {
			if !slices.Contains(f.status, r.State.Status) {
				continue
			}
		} else if !f.all && r.State.Status != supervisor.StatusRunning && r.State.Status != supervisor.StatusRestarting && r.State.Status != supervisor.StatusPaused {
			continue
		}
		out = append(out, r)
	}
	return out
}

// psEntry is a line of `ps --format json`, with compose's keys.
type psEntry struct {
	ID           string            `json:"ID"`
	Name         string            `json:"Name"`
	Image        string            `json:"Image"`
	Command      string            `json:"Command"`
	Project      string            `json:"Project"`
	Service      string            `json:"Service"`
	Created      int64             `json:"Created"`
	CreatedAt    string            `json:"CreatedAt"`
	State        string            `json:"State"`
	Status       string            `json:"Status"`
	Health       string            `json:"Health"`
	ExitCode     int               `json:"ExitCode"`
	RestartCount int               `json:"RestartCount"`
	Labels       map[string]string `json:"Labels"`
	Publishers   []publisher       `json:"Publishers"`
	Ports        string            `json:"Ports"`
}

func printPs(out io.Writer, recs []supervisor.Record, f *psFlags) error {
	switch {
	case f.services:
		seen := map[string]bool{}
		var names []string
		for _, r := range recs {
			if !seen[r.Service] {
				seen[r.Service] = true
				names = append(names, r.Service)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintln(out, n)
		}
		return nil
	case f.quiet:
		for _, r := range recs {
			fmt.Fprintln(out, r.ID)
		}
		return nil
	case f.format == "json":
		enc := json.NewEncoder(out)
		for _, r := range recs {
			if err := enc.Encode(newPsEntry(r)); err != nil {
				return err
			}
		}
		return nil
	case f.format != "table" && f.format != "":
		// Anything else is a template, as docker's formatter takes it
		// (a word without {{ }} is printed as it is).
		entries := make([]psEntry, len(recs))
		for i, r := range recs {
			entries[i] = newPsEntry(r)
		}
		return templateTable(out, f.format, entries)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIMAGE\tCOMMAND\tSERVICE\tCREATED\tSTATUS\tPORTS")
	now := time.Now()
	for _, r := range recs {
		command := quoteCommand(r.Command)
		if !f.noTrunc {
			command = truncate(command, 20)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Image, command,
			r.Service, units.HumanDuration(now.Sub(r.Created))+" ago", statusText(r.State, now), portsText(r.Ports))
	}
	return tw.Flush()
}

func newPsEntry(r supervisor.Record) psEntry {
	return psEntry{
		ID: r.ID, Name: r.Name, Image: r.Image, Command: quoteCommand(r.Command),
		Project: r.Project, Service: r.Service, Created: r.Created.Unix(),
		CreatedAt: r.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		State:     r.State.Status, Status: statusText(r.State, time.Now()), Health: r.State.Health,
		ExitCode: r.State.ExitCode, RestartCount: r.State.RestartCount, Labels: r.Labels, Publishers: publishers(r.Ports),
		Ports: portsText(r.Ports),
	}
}

// statusText is docker's STATUS column: "Up 5 seconds (healthy)",
// "Exited (0) 3 seconds ago", "Restarting (1) 2 seconds ago", "Created".
func statusText(s supervisor.State, now time.Time) string {
	switch s.Status {
	case supervisor.StatusRunning, supervisor.StatusPaused:
		t := "Up " + units.HumanDuration(now.Sub(s.StartedAt))
		if s.Status == supervisor.StatusPaused {
			t += " (Paused)"
		} else if s.Health != "" {
			if s.Health == "starting" {
				t += " (health: starting)"
			} else {
				t += " (" + s.Health + ")"
			}
		}
		return t
	case supervisor.StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, units.HumanDuration(now.Sub(s.FinishedAt)))
	case supervisor.StatusExited:
		if s.ExitUnknown {
			return fmt.Sprintf("Exited (unknown) %s ago", units.HumanDuration(now.Sub(s.FinishedAt)))
		}
		return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, units.HumanDuration(now.Sub(s.FinishedAt)))
	case supervisor.StatusCreated:
		return "Created"
	case supervisor.StatusDead:
		return "Dead"
	}
	return s.Status
}

func quoteCommand(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	return `"` + strings.Join(q, " ") + `"`
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-4] + "…\""
}

// publisher is compose's JSON form of a published port.
type publisher struct {
	URL           string `json:"URL"`
	TargetPort    uint32 `json:"TargetPort"`
	PublishedPort int    `json:"PublishedPort"`
	Protocol      string `json:"Protocol"`
}

func publishers(ports []supervisor.PortBinding) []publisher {
	out := []publisher{}
	for _, p := range ports {
		url := p.HostIP
		if url == "" {
			url = "0.0.0.0"
		}
		out = append(out, publisher{URL: url, TargetPort: p.Target, PublishedPort: p.HostPort, Protocol: p.Protocol})
	}
	return out
}

// portsText is the PORTS column: "0.0.0.0:8080->80/tcp, 127.0.0.1:9000->90/udp".
func portsText(ports []supervisor.PortBinding) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}
