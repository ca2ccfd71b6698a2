package bench

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
	"golang.org/x/sys/unix"
)

// Repetitions behind each figure (the table shows medians).
const (
	stackRuns = 10 // berth up -d / down of 3 and 10 services
	scaleRuns = 5  // berth scale web=20 and back
	onceRuns  = 10 // berth up of one service that exits at once
	peerRuns  = 3  // the same under docker compose, when an engine runs
)

// Targets of the project brief.
const (
	targetUp10    = 200 * time.Millisecond
	targetScale20 = 400 * time.Millisecond
)

// stack is a compose file of n busybox services that wait for a signal,
// each with berth (or docker-init) as PID 1 when init is set.
func stack(name string, n int, init bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nservices:\n", name)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  s%02d:\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n    init: %v\n", i, init)
	}
	return b.String()
}

// scaled is a compose file of one such service, to be scaled.
func scaled(name string) string {
	return fmt.Sprintf("name: %s\nservices:\n  web:\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n    init: true\n", name)
}

// timed runs berth and returns how long the command took.
func timed(e *harness.Env, args ...string) time.Duration {
	start := time.Now()
	e.MustRun(args...)
	return time.Since(start)
}

// BenchmarkUpDown times `berth up -d` and `berth down` of stacks of 3 and
// 10 services with the built binary, as a user runs them, next to docker
// compose (measured when an engine runs here, else PEERS.md's figures).
func BenchmarkUpDown(b *testing.B) {
	for _, n := range []int{3, 10} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			e := harness.New(b)
			e.LoadImage("busybox:latest")
			compose := stack("bench", n, true)
			e.WriteFile("compose.yaml", compose)
			var up, noop, down []time.Duration
			for range b.N {
				for range stackRuns {
					up = append(up, timed(e, "up", "-d"))
					noop = append(noop, timed(e, "up", "-d"))
					down = append(down, timed(e, "down", "-t", "1"))
				}
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(median(up))/1e6, "up-ms")
			b.ReportMetric(float64(median(down))/1e6, "down-ms")

			peerUp, peerDown, src := peerUpDown(b, compose, "berthbench", []string{"up", "-d"})
			if src == "" {
				src = peersSource
				switch n {
				case 3:
					peerUp = peersUp3
				case 10:
					peerUp, peerDown = peersUp10, peersDown10
				}
			}
			upRow := row{sec: secStack, what: fmt.Sprintf("up -d, %d services", n), runs: len(up), berth: ms(median(up))}
			downRow := row{sec: secStack, what: fmt.Sprintf("down, %d services", n), runs: len(down), berth: ms(median(down))}
			fill(&upRow, peerUp, median(up), src)
			fill(&downRow, peerDown, median(down), src)
			if n == 10 {
				upRow.target = "≤ " + ms(targetUp10)
				upRow.met = yesNo(median(up) <= targetUp10)
				setNoopFloor("up", median(noop))
			}
			record(upRow)
			record(row{sec: secStack, what: fmt.Sprintf("up -d, %d services already running (nothing to do)", n), runs: len(noop), berth: ms(median(noop)), base: "—", source: "the CLI, the compose file, one request", ratio: "—"})
			record(downRow)
		})
	}
}

// BenchmarkScale times one service going to 20 replicas: `berth up -d
// --scale web=20` from nothing, and `berth scale web=20` from one running
// replica, then back with `berth scale web=1`.
func BenchmarkScale(b *testing.B) {
	e := harness.New(b)
	e.LoadImage("busybox:latest")
	compose := scaled("benchscale")
	e.WriteFile("compose.yaml", compose)
	var upScaled, downScaled, up, noop, down []time.Duration
	for range b.N {
		for range scaleRuns {
			upScaled = append(upScaled, timed(e, "up", "-d", "--scale", "web=20"))
			if got := replicas(e); got != 20 {
				b.Logf("up -d --scale web=20 left %d replicas", got)
			}
			downScaled = append(downScaled, timed(e, "down", "-t", "1"))

			e.MustRun("up", "-d")
			up = append(up, timed(e, "scale", "web=20"))
			if got := replicas(e); got != 20 {
				b.Logf("scale web=20 left %d replicas", got)
			}
			noop = append(noop, timed(e, "scale", "web=20"))
			down = append(down, timed(e, "scale", "web=1"))
			e.MustRun("down", "-t", "1")
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(median(upScaled))/1e6, "up-scale20-ms")
	b.ReportMetric(float64(median(up))/1e6, "scale-1to20-ms")
	b.ReportMetric(float64(median(down))/1e6, "scale-20to1-ms")

	// The peer: up -d --scale from nothing, and from one replica (docker
	// compose scales a running project with up --no-recreate --scale).
	var pUpScaled, pDownScaled, pUp, pDown time.Duration
	src := ""
	if p := dockerPeer(); p != nil {
		dir, err := writeCompose(compose)
		if err == nil {
			defer os.RemoveAll(dir)
			var a, bb, c, d []time.Duration
			for range peerRuns {
				t1, err1 := p.compose(dir, "berthbenchscale", "up", "-d", "--scale", "web=20")
				t2, err2 := p.compose(dir, "berthbenchscale", "down", "-t", "1")
				_, err3 := p.compose(dir, "berthbenchscale", "up", "-d")
				t3, err4 := p.compose(dir, "berthbenchscale", "up", "-d", "--no-recreate", "--scale", "web=20")
				t4, err5 := p.compose(dir, "berthbenchscale", "up", "-d", "--no-recreate", "-t", "1", "--scale", "web=1")
				p.down(dir, "berthbenchscale")
				if err := firstErr(err1, err2, err3, err4, err5); err != nil {
					note("docker compose scale run failed: %v", err)
					a = nil
					break
				}
				a, bb, c, d = append(a, t1), append(bb, t2), append(c, t3), append(d, t4)
			}
			if len(a) > 0 {
				pUpScaled, pDownScaled, pUp, pDown = median(a), median(bb), median(c), median(d)
				src = p.label()
			}
		}
	}
	src1 := src
	if src == "" {
		// PEERS.md has docker compose's up -d of one service scaled to 20;
		// it is also the nearest figure for scaling a running one.
		src, pUpScaled = peersSource, peersUpScaled20
		src1, pUp = "docker compose v5.5 up -d scaled to 20, PEERS.md figure", peersUpScaled20
	}
	rows := []row{
		{what: "up -d, one service scaled to 20", runs: len(upScaled), berth: ms(median(upScaled))},
		{what: "down, one service scaled to 20", runs: len(downScaled), berth: ms(median(downScaled))},
		{what: "scale web=20 from 1 running", runs: len(up), berth: ms(median(up))},
		{what: "scale web=1 from 20 running", runs: len(down), berth: ms(median(down))},
	}
	setNoopFloor("scale", median(noop))
	record(row{sec: secStack, what: "scale web=20 with 20 running (nothing to do)", runs: len(noop), berth: ms(median(noop)), base: "—", source: "the CLI, the compose file, one request", ratio: "—"})
	fill(&rows[0], pUpScaled, median(upScaled), src)
	fill(&rows[1], pDownScaled, median(downScaled), src)
	fill(&rows[2], pUp, median(up), src1)
	fill(&rows[3], pDown, median(down), src)
	for i := range rows {
		rows[i].sec = secStack
		if i == 0 || i == 2 {
			got := median(upScaled)
			if i == 2 {
				got = median(up)
			}
			rows[i].target = "≤ " + ms(targetScale20)
			rows[i].met = yesNo(got <= targetScale20)
		}
		record(rows[i])
	}
}

// peerUpDown runs compose under the peer, if there is one: peerRuns times
// up (with upArgs) and down. It returns the medians and the baseline's
// label, or "" when no peer ran.
func peerUpDown(b *testing.B, compose, name string, upArgs []string) (up, down time.Duration, src string) {
	p := dockerPeer()
	if p == nil {
		return 0, 0, ""
	}
	dir, err := writeCompose(compose)
	if err != nil {
		b.Logf("peer: %v", err)
		return 0, 0, ""
	}
	defer os.RemoveAll(dir)
	var ups, downs []time.Duration
	for range peerRuns {
		u, err := p.compose(dir, name, upArgs...)
		if err != nil {
			p.down(dir, name)
			note("docker compose up failed, no measured docker figures: %v", err)
			return 0, 0, ""
		}
		d, err := p.compose(dir, name, "down", "-t", "1")
		if err != nil {
			p.down(dir, name)
			note("docker compose down failed, no measured docker figures: %v", err)
			return 0, 0, ""
		}
		ups, downs = append(ups, u), append(downs, d)
	}
	return median(ups), median(downs), p.label()
}

// fill sets r's baseline columns: base is the baseline's time (zero when
// there is none) and got berth's.
func fill(r *row, base, got time.Duration, src string) {
	if base == 0 {
		r.base, r.source, r.ratio = "—", "no figure", "—"
		return
	}
	r.base, r.source = ms(base), src
	r.ratio = times(float64(got) / float64(base))
}

// replicas counts the running containers of the project in e's directory.
func replicas(e *harness.Env) int {
	out := e.MustRun("ps", "-q").Stdout
	return len(strings.Fields(out))
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkUpOnce times `berth up` (attached) of one service running
// `true`: create, start, attach, wait for the exit; the nearest berth has
// to `docker run`.
func BenchmarkUpOnce(b *testing.B) {
	e := harness.New(b)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", "name: benchonce\nservices:\n  one:\n    image: busybox\n    command: [\"true\"]\n")
	var took []time.Duration
	for range b.N {
		for range onceRuns {
			took = append(took, timed(e, "up"))
			e.MustRun("down", "-t", "1")
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(median(took))/1e6, "up-ms")
	r := row{sec: secStart, what: "berth up (attached) of one service running true", runs: len(took), berth: ms(median(took))}
	fill(&r, peersDockerRun, median(took), "`docker run`, PEERS.md figure")
	record(r)
}

// BenchmarkUpOnTmpfs times `berth up -d` of 10 services with berth's roots
// on a tmpfs: next to BenchmarkUpDown's figure on this machine's disk, it
// shows what the files and directories each container makes cost here
// (on an ext4 without a journal, a new inode can cost a millisecond of
// CPU; see docs/design.md, "Files per container").
func BenchmarkUpOnTmpfs(b *testing.B) {
	dir, err := os.MkdirTemp("", "berth-tmpfs-")
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
		os.Remove(dir)
		b.Skipf("tmpfs: %v", err)
	}
	b.Cleanup(func() { // after the Env's own cleanup
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		os.Remove(dir)
	})
	b.Setenv("TMPDIR", dir)
	e := harness.New(b)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", stack("bench", 10, true))
	var up []time.Duration
	for range b.N {
		for range stackRuns {
			up = append(up, timed(e, "up", "-d"))
			e.MustRun("down", "-t", "1")
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(median(up))/1e6, "up-ms")
	record(row{sec: secStack, what: "up -d, 10 services, berth's roots on a tmpfs", runs: len(up), berth: ms(median(up)), base: "—", source: "what the disk's inodes cost: compare up -d, 10 services", ratio: "—"})
}
