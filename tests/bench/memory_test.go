package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

const (
	memContainers = 10
	memSettle     = time.Second // after up -d, before sampling
	targetMemory  = 12e6        // bytes, berth's processes in all
)

// usage is what one class of processes costs.
type usage struct {
	n        int
	rss, pss int64
	anon     int64 // the anonymous part of pss (heaps, stacks)
}

func (u *usage) add(m smaps) { u.n++; u.rss += m.rss; u.pss += m.pss; u.anon += m.pssAnon }

// berthUsage is the memory of an Env's berth processes: its supervisors
// and, below them, the processes running the berth binary (the reapers of
// `init: true`). The containers' own commands are not berth's cost.
type berthUsage struct {
	supervisor, reapers, other usage
}

func (u berthUsage) total() usage {
	return usage{
		n:    u.supervisor.n + u.reapers.n + u.other.n,
		rss:  u.supervisor.rss + u.reapers.rss + u.other.rss,
		pss:  u.supervisor.pss + u.reapers.pss + u.other.pss,
		anon: u.supervisor.anon + u.reapers.anon + u.other.anon,
	}
}

// BenchmarkMemory brings up 10 services that sleep, with `init: true` (a
// berth reaper as each container's PID 1) and without, and sums RSS and
// PSS (/proc/<pid>/smaps_rollup) of berth's processes.
func BenchmarkMemory(b *testing.B) {
	for _, init := range []bool{true, false} {
		b.Run(fmt.Sprintf("init=%v", init), func(b *testing.B) {
			e := harness.New(b)
			e.LoadImage("busybox:latest")
			compose := stack("benchmem", memContainers, init)
			e.WriteFile("compose.yaml", compose)
			var got berthUsage
			for range b.N {
				e.MustRun("up", "-d")
				time.Sleep(memSettle)
				u, err := measureBerth(e)
				e.MustRun("down", "-t", "1")
				if err != nil {
					b.Logf("measuring: %v", err)
					note("memory (init: %v): %v", init, err)
					return
				}
				got = u
			}
			t := got.total()
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(t.rss)/1e6, "rss-MB")
			b.ReportMetric(float64(t.pss)/1e6, "pss-MB")

			base, src := int64(peersDockerMemory), peersMemorySource
			if rss, pss, n, err := peerMemory(compose); err == nil {
				base, src = pss, fmt.Sprintf("dockerd+containerd+shims (%d processes, PSS; RSS %s), this run", n, mb(rss))
			} else if dockerPeer() != nil {
				note("docker memory (init: %v): %v", init, err)
			}
			label := "no init"
			if init {
				label = "init: true"
			}
			record(row{sec: secMemory, what: fmt.Sprintf("%s: berth in all (%s), PSS", label, procs(t.n)), runs: b.N,
				berth: mb(t.pss), base: mb(base), source: src, ratio: times(float64(t.pss) / float64(base)),
				target: "≤ " + mb(targetMemory), met: yesNo(t.pss <= targetMemory)})
			record(row{sec: secMemory, what: fmt.Sprintf("%s: berth in all (%s), RSS", label, procs(t.n)), runs: b.N,
				berth: mb(t.rss), base: "—", source: "RSS counts shared pages in each process", ratio: "—"})
			s := got.supervisor
			record(row{sec: secMemory, what: fmt.Sprintf("%s: supervisor (%s), RSS / PSS", label, procs(s.n)), runs: b.N,
				berth: mb(s.rss) + " / " + mb(s.pss), base: "—", source: "", ratio: "—"})
			if r := got.reapers; r.n > 0 {
				record(row{sec: secMemory, what: fmt.Sprintf("%s: one reaper (mean of %d), RSS / PSS", label, r.n), runs: b.N,
					berth: mb(r.rss/int64(r.n)) + " / " + mb(r.pss/int64(r.n)), base: "—", source: "", ratio: "—"})
			}
			note("%s: of berth's %s PSS, %s is anonymous (heaps, stacks: supervisor %s, reapers %s) and the rest file pages of the binaries (berth-engine, berth-init)",
				label, mb(t.pss), mb(t.anon), mb(got.supervisor.anon), mb(got.reapers.anon))
			if o := got.other; o.n > 0 {
				note("%s: %d other berth processes below the supervisor: RSS %s, PSS %s", label, o.n, mb(o.rss), mb(o.pss))
			}
		})
	}
}

// measureBerth sums the memory of e's supervisors and of the processes
// below them that run the berth binary.
func measureBerth(e *harness.Env) (berthUsage, error) {
	var u berthUsage
	sups := e.SupervisorPIDs()
	if len(sups) == 0 {
		return u, fmt.Errorf("no supervisor running")
	}
	bin, err := os.Stat(e.Bin)
	if err != nil {
		return u, err
	}
	for _, pid := range sups {
		m, err := smapsRollup(pid)
		if err != nil {
			return u, err
		}
		u.supervisor.add(m)
	}
	for _, pid := range descendants(sups) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		reaper := bytes.Contains(cmdline, []byte("\x00__reaper\x00"))
		exe, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
		if !reaper && (err != nil || !os.SameFile(exe, bin)) {
			continue // a container's own command, or gone
		}
		m, err := smapsRollup(pid)
		if err != nil {
			continue
		}
		if reaper {
			u.reapers.add(m)
		} else {
			u.other.add(m)
		}
	}
	return u, nil
}

// descendants lists every process below the given ones.
func descendants(roots []int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// smaps is a process's memory from /proc/<pid>/smaps_rollup, in bytes.
type smaps struct{ rss, pss, pssAnon int64 }

func smapsRollup(pid int) (smaps, error) {
	var m smaps
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return m, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "Rss":
			m.rss = kb << 10
		case "Pss":
			m.pss = kb << 10
		case "Pss_Anon":
			m.pssAnon = kb << 10
		}
	}
	return m, sc.Err()
}

// peerMemory brings compose up under docker compose, when an engine runs,
// and measures Docker's processes with the containers running.
func peerMemory(compose string) (rss, pss int64, n int, err error) {
	p := dockerPeer()
	if p == nil {
		return 0, 0, 0, fmt.Errorf("no docker engine")
	}
	dir, err := writeCompose(compose)
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(dir)
	defer p.down(dir, "berthbenchmem")
	if _, err := p.compose(dir, "berthbenchmem", "up", "-d"); err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(memSettle)
	rss, pss, n = dockerMemory()
	if n == 0 {
		return 0, 0, 0, fmt.Errorf("no dockerd, containerd or shim process found")
	}
	return rss, pss, n, nil
}

func procs(n int) string {
	if n == 1 {
		return "1 process"
	}
	return fmt.Sprintf("%d processes", n)
}
