package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/supervisor"
)

type statsFlags struct {
	all, noStream, noTrunc bool
	format                 string
}

func newStatsCommand(g *globals) *cobra.Command {
	f := &statsFlags{}
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [SERVICE]",
		Short: "Display a live stream of container(s) resource usage statistics",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStats(cmd, g, f, args)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.all, "all", "a", false, "Show all containers (default shows just running)")
	fl.BoolVar(&f.noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	fl.BoolVar(&f.noTrunc, "no-trunc", false, "Do not truncate output")
	fl.StringVar(&f.format, "format", "", "Format output using a custom template:\n"+
		"'table':            Print output in table format with column headers (default)\n"+
		"'table TEMPLATE':   Print output in table format using the given Go template\n"+
		"'json':             Print in JSON format\n"+
		"'TEMPLATE':         Print output using the given Go template.\n"+
		"Refer to https://docs.docker.com/engine/cli/formatting/ for more information about formatting output with templates")
	return cmd
}

// statsRow is one line of stats, with docker's field names (the JSON keys
// and the template fields).
type statsRow struct {
	BlockIO   string `json:"BlockIO"`
	CPUPerc   string `json:"CPUPerc"`
	Container string `json:"Container"`
	ID        string `json:"ID"`
	MemPerc   string `json:"MemPerc"`
	MemUsage  string `json:"MemUsage"`
	Name      string `json:"Name"`
	NetIO     string `json:"NetIO"`
	PIDs      string `json:"PIDs"`
}

const statsTable = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

var statsHeaders = map[string]string{
	"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
	"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}

func runStats(cmd *cobra.Command, g *globals, f *statsFlags, args []string) error {
	ctx := cmd.Context()
	proj, p, err := g.projectName(ctx)
	if err != nil {
		return err
	}
	if err := checkServices(p, args); err != nil {
		return err
	}
	c := supervisor.Running(ctx, g.paths(), proj)
	out := cmd.OutOrStdout()
	live := !f.noStream && isTerminal(out)
	sample := func() (map[string]supervisor.ContainerStats, []supervisor.ContainerStats, error) {
		if c == nil {
			return nil, nil, nil
		}
		list, err := c.Stats(ctx)
		if err != nil {
			return nil, nil, err
		}
		byID := map[string]supervisor.ContainerStats{}
		var keep []supervisor.ContainerStats
		for _, s := range list {
			if len(args) > 0 && s.Service != args[0] || !f.all && !s.Running {
				continue
			}
			byID[s.ID] = s
			keep = append(keep, s)
		}
		return byID, keep, nil
	}
	prev, _, err := sample()
	if err != nil {
		return err
	}
	memTotal := hostMemory()
	for {
		// CPU % needs two samples, as docker's first figure does.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(map[bool]time.Duration{true: 500 * time.Millisecond, false: time.Second}[f.noStream]):
		}
		cur, list, err := sample()
		if err != nil {
			return err
		}
		rows := make([]statsRow, 0, len(list))
		for _, s := range list {
			rows = append(rows, statsRowOf(s, prev[s.ID], memTotal, f.noTrunc))
		}
		if live {
			fmt.Fprint(out, "\033[2J\033[H")
		}
		if err := printStats(out, f.format, rows); err != nil {
			return err
		}
		if f.noStream {
			return nil
		}
		prev = cur
	}
}

func statsRowOf(s, prev supervisor.ContainerStats, memTotal uint64, noTrunc bool) statsRow {
	id := s.ID
	if !noTrunc {
		id = id[:12]
	}
	st := s.Stats
	cpu := 0.0
	if wall := s.Time.Sub(prev.Time); prev.ID != "" && wall > 0 && st.CPUNanos >= prev.Stats.CPUNanos {
		cpu = float64(st.CPUNanos-prev.Stats.CPUNanos) / float64(wall.Nanoseconds()) * 100
	}
	limit := st.MemoryLimit
	if limit == 0 || memTotal > 0 && limit > memTotal {
		limit = memTotal
	}
	mem := 0.0
	if limit > 0 {
		mem = float64(st.MemoryUsage) / float64(limit) * 100
	}
	r := statsRow{ID: id, Container: id, Name: s.Name,
		CPUPerc:  fmt.Sprintf("%.2f%%", cpu),
		MemUsage: units.BytesSize(float64(st.MemoryUsage)) + " / " + units.BytesSize(float64(limit)),
		MemPerc:  fmt.Sprintf("%.2f%%", mem),
		NetIO:    units.HumanSizeWithPrecision(float64(st.NetRx), 3) + " / " + units.HumanSizeWithPrecision(float64(st.NetTx), 3),
		BlockIO:  units.HumanSizeWithPrecision(float64(st.BlockRead), 3) + " / " + units.HumanSizeWithPrecision(float64(st.BlockWrite), 3),
		PIDs:     strconv.FormatUint(st.Pids, 10),
	}
	if !s.Running {
		r.CPUPerc, r.MemUsage, r.MemPerc, r.NetIO, r.BlockIO, r.PIDs = "--", "-- / --", "--", "--", "--", "--"
	}
	return r
}

func printStats(w io.Writer, format string, rows []statsRow) error {
	switch {
	case format == "json":
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	case format == "" || format == "table":
		format = statsTable
	}
	table := strings.HasPrefix(format, "table")
	body := strings.TrimSpace(strings.TrimPrefix(format, "table"))
	tmpl, err := template.New("stats").Parse(body + "\n")
	if err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
		out = tw
		hdr := body
		for k, v := range statsHeaders {
			hdr = strings.ReplaceAll(hdr, "{{."+k+"}}", v)
		}
		fmt.Fprintln(out, hdr)
	}
	for _, r := range rows {
		if err := tmpl.Execute(out, r); err != nil {
			return err
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// hostMemory is the host's memory, the limit of an unlimited container.
func hostMemory() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
