package bench

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	rt "github.com/berthrun/berth/engine/runtime"
	"golang.org/x/sys/unix"
)

// atOnceRuns is how many times each kind starts each batch.
const atOnceRuns = 7

// floors holds what BenchmarkStartAtOnce and the stack benchmarks measure
// of the parts of `up -d` and `scale` that are not berth's own, so that the
// table can say what is left of their targets.
var floors = struct {
	sync.Mutex
	engine map[int]time.Duration    // berth's engine alone, n containers at once
	noop   map[string]time.Duration // a command with nothing to do, by verb
}{engine: map[int]time.Duration{}, noop: map[string]time.Duration{}}

func setEngineFloor(n int, d time.Duration) {
	floors.Lock()
	defer floors.Unlock()
	floors.engine[n] = d
}

func setNoopFloor(verb string, d time.Duration) {
	floors.Lock()
	defer floors.Unlock()
	floors.noop[verb] = d
}

// BenchmarkStartAtOnce starts 10 and then 19 containers at once, as `up -d`
// of 10 services and `scale web=20` from one running do, and times until
// every container's command runs: straight on libcontainer with runc's
// example config, and through berth's engine alone (Docker's defaults and
// seccomp profile, precompiled), without the CLI, compose file, network,
// overlay or records. The inits get GOMAXPROCS=1, as the supervisor's do.
func BenchmarkStartAtOnce(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	e := newStartEnv(b)
	b.Setenv("GOMAXPROCS", "1")
	kinds := []struct {
		name  string
		start func(id string) (stop func() error, err error)
	}{
		{"raw", func(id string) (func() error, error) {
			c, p, err := e.rawRun(id, "sleep", "3600")
			if err != nil {
				return nil, err
			}
			return func() error {
				_ = p.Signal(unix.SIGKILL)
				_, _ = p.Wait()
				return c.Destroy()
			}, nil
		}},
		{"engine", func(id string) (func() error, error) {
			c, err := e.engineCreate(id, rt.SeccompDefault, "sleep", "3600")
			if err != nil {
				return nil, err
			}
			if err := c.Start(); err != nil {
				return nil, errors.Join(err, c.Destroy())
			}
			return c.Destroy, nil
		}},
	}
	for _, n := range []int{10, 19} {
		took := make([][]time.Duration, len(kinds))
		for i := range atOnceRuns + 1 {
			for j := range kinds {
				k := (i + j) % len(kinds)
				d, err := e.atOnce(n, kinds[k].start)
				if err != nil {
					b.Fatalf("%d at once, %s: %v", n, kinds[k].name, err)
				}
				if i > 0 { // the first round warms caches
					took[k] = append(took[k], d)
				}
			}
		}
		raw, engine := median(took[0]), median(took[1])
		b.ReportMetric(float64(raw)/1e6, fmt.Sprintf("raw-%d-ms", n))
		b.ReportMetric(float64(engine)/1e6, fmt.Sprintf("engine-%d-ms", n))
		setEngineFloor(n, engine)
		src := "raw libcontainer, this run"
		record(row{sec: secStart, what: fmt.Sprintf("%d started at once, raw libcontainer (runc example config)", n), runs: len(took[0]), berth: ms(raw), base: "—", source: "the floor of any libcontainer runtime", ratio: "—"})
		record(row{sec: secStart, what: fmt.Sprintf("%d started at once, engine alone (no CLI, network, overlay)", n), runs: len(took[1]), berth: ms(engine), base: ms(raw), source: src, ratio: times(float64(engine) / float64(raw))})
	}
	b.ReportMetric(0, "ns/op")
	note("at once: n containers created and started concurrently, timed until every one's command runs (the parts of up -d and scale that are libcontainer's and its init's)")
}

// atOnce starts n containers concurrently and returns how long it took
// until all of them ran, then stops them.
func (e *startEnv) atOnce(n int, start func(id string) (func() error, error)) (time.Duration, error) {
	stops := make([]func() error, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		e.seq++
		id := fmt.Sprintf("b%d", e.seq)
		wg.Add(1)
		go func() {
			defer wg.Done()
			stops[i], errs[i] = start(id)
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	for _, stop := range stops {
		if stop != nil {
			errs = append(errs, stop())
		}
	}
	return took, errors.Join(errs...)
}

// recordFloors adds, when both halves were measured in this run, the
// floors of `up -d` of 10 and of `scale web=20` from one: a command that
// finds nothing to do plus berth's engine starting the containers alone.
// Each is what these commands cost here before berth's network, overlay,
// records and DNS, next to the target.
func recordFloors() {
	floors.Lock()
	defer floors.Unlock()
	for _, f := range []struct {
		what, noop string
		n          int
		target     time.Duration
	}{
		{"floor of up -d, 10 services", "up", 10, targetUp10},
		{"floor of scale web=20 from 1 running", "scale", 19, targetScale20},
	} {
		noop, okN := floors.noop[f.noop]
		engine, okE := floors.engine[f.n]
		if !okN || !okE {
			continue
		}
		sum := noop + engine
		record(row{sec: secStack, what: f.what, berth: ms(sum), base: "—",
			source: fmt.Sprintf("nothing-to-do %s (%s) + engine alone, %d at once (%s)", f.noop, ms(noop), f.n, ms(engine)),
			ratio:  "—", target: "≤ " + ms(f.target), met: yesNo(sum <= f.target)})
	}
}
