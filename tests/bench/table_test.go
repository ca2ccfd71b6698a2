package bench

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// The summary table: every benchmark records its rows here, and TestMain
// prints them once, after the last benchmark.

// Sections of the table, in print order.
const (
	secStack = iota
	secStart
	secProxy
	secServers
	secMemory
	secBuild
)

var sectionNames = map[int]string{
	secStack:   "stack lifecycle (berth CLI, busybox services)",
	secStart:   "one container start→exit",
	secProxy:   "published-port proxy",
	secServers: "published port vs the container's address: real servers from Debian's packages, clients on the host",
	secMemory:  "memory with 10 running containers",
	secBuild:   "berth build (compose file, busybox base unless named)",
}

// row is one measurement next to its baseline.
type row struct {
	sec    int
	what   string
	runs   int    // repetitions behind the figure (medians)
	berth  string // berth's figure
	base   string // the baseline's figure
	source string // what the baseline is, and whether it was measured in this run
	ratio  string // berth / baseline
	target string // the project's target, "" if none
	met    string // "yes", "NO" or ""
}

var table struct {
	sync.Mutex
	rows  []row
	notes []string
}

// record adds r, replacing an earlier row of the same section and name (a
// benchmark body may run more than once).
func record(r row) {
	table.Lock()
	defer table.Unlock()
	for i := range table.rows {
		if table.rows[i].sec == r.sec && table.rows[i].what == r.what {
			table.rows[i] = r
			return
		}
	}
	table.rows = append(table.rows, r)
}

// note adds a line printed under the table, once.
func note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	table.Lock()
	defer table.Unlock()
	if !slices.Contains(table.notes, s) {
		table.notes = append(table.notes, s)
	}
}

func printTable(w io.Writer, version string) {
	table.Lock()
	defer table.Unlock()
	if len(table.rows) == 0 {
		return
	}
	rows := slices.Clone(table.rows)
	slices.SortStableFunc(rows, func(a, b row) int { return a.sec - b.sec })

	fmt.Fprintf(w, "\n=== berth bench summary — %s ===\n", time.Now().UTC().Format("Mon 2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(w, "machine: %d CPUs, %s, kernel %s, %s; berth %s; load average now %s\n",
		runtime.NumCPU(), cpuModel(), kernel(), runtime.Version(), version, loadAverage())
	fmt.Fprintln(w, "figures are medians of `runs` repetitions; ratio = berth / baseline (times, memory: lower is better; throughput: higher is better)")
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "measurement\truns\tberth\tbaseline\tbaseline is\tratio\ttarget\tmet")
	sec := -1
	for _, r := range rows {
		if r.sec != sec {
			sec = r.sec
			fmt.Fprintf(tw, "-- %s\t\t\t\t\t\t\t\n", sectionNames[sec])
		}
		runs := ""
		if r.runs > 0 {
			runs = fmt.Sprint(r.runs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.what, runs, r.berth, r.base, r.source, r.ratio, r.target, r.met)
	}
	tw.Flush()
	for _, n := range table.notes {
		fmt.Fprintln(w, "note:", n)
	}
	fmt.Fprintln(w)
}

// Formatting helpers.

func ms(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

func us(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

// mb formats bytes in MB (10⁶ bytes), the unit of PEERS.md and the brief.
func mb(bytes int64) string { return fmt.Sprintf("%.1f MB", float64(bytes)/1e6) }

// times formats a ratio as "0.07×".
func times(r float64) string {
	if r == 0 || r != r {
		return "—"
	}
	return fmt.Sprintf("%.2f×", r)
}

func percent(r float64) string { return fmt.Sprintf("%.0f%%", 100*r) }

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianF(fs []float64) float64 {
	if len(fs) == 0 {
		return 0
	}
	s := slices.Clone(fs)
	slices.Sort(s)
	return s[len(s)/2]
}

// Machine description for the table's header.

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "cpu ?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "cpu ?"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// loadAverage is the machine's 1, 5 and 15-minute load averages: figures
// taken on a machine busy with other work are noisier.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func berthVersion() string {
	bin := os.Getenv("BERTH_BIN")
	if bin == "" {
		return "(built by the test)"
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "berth version ")
}
