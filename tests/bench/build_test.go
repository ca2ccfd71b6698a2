package bench

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
	"golang.org/x/sys/unix"
)

// Repetitions of the build benchmarks: a cold build of the 5000-file
// project writes 100 MB, so it runs fewer times than the rebuilds.
const (
	buildColdRuns   = 3
	buildRebuilds   = 7
	buildOneFileRun = 3
)

// BuildKit's figures of PEERS.md (`docker compose build` with dockerd
// 20.10's BuildKit on this machine, medians of 5): no Docker engine with
// BuildKit runs beside the bench, so they are not measured in the run.
const buildPeersSource = "BuildKit, PEERS.md figure"

// buildProject is one row group of the table: a project, BuildKit's
// figures for it and the project's targets.
type buildProject struct {
	name                string
	peerCold, peerNoop  time.Duration
	peerOne             time.Duration
	targetNoop          time.Duration // ≤ 1/5 of BuildKit's, and at most 65 ms
	coldRatio, oneRatio float64       // targets as ratios to BuildKit's
	touch               string        // the source file the one-file rebuild changes
	// beside, when set, runs after each one-file rebuild (the i-th) and
	// returns the time of what is measured beside it.
	beside func(i int) time.Duration
}

// benchBuild times `berth build` of the compose project in e.Dir: cold
// (after `builder prune`), with nothing changed, and with one source file
// changed, records the rows and returns the one-file rebuilds' times and
// what p.beside measured after each.
func benchBuild(b *testing.B, e *harness.Env, p buildProject) (one, beside []time.Duration) {
	build := func() time.Duration {
		start := time.Now()
		e.MustRun("build")
		return time.Since(start)
	}
	var cold, noop []time.Duration
	for range b.N {
		for range buildColdRuns {
			e.MustRun("builder", "prune", "-f")
			dropCaches()
			cold = append(cold, build())
		}
		for range buildRebuilds {
			noop = append(noop, build())
		}
		for i := range buildOneFileRun {
			appendChange(b, filepath.Join(e.Dir, p.touch), i)
			one = append(one, build())
			if p.beside != nil {
				beside = append(beside, p.beside(i))
			}
		}
	}
	b.Logf("%s: cold %v, no change %v, one file %v", p.name, cold, noop, one)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(median(cold))/1e6, "cold-ms")
	b.ReportMetric(float64(median(noop))/1e6, "nochange-ms")
	b.ReportMetric(float64(median(one))/1e6, "onefile-ms")

	add := func(what string, runs int, got, peer time.Duration, targetRatio float64, targetAbs time.Duration) {
		r := row{sec: secBuild, what: p.name + ": " + what, runs: runs, berth: ms(got), base: ms(peer), source: buildPeersSource,
			ratio: times(float64(got) / float64(peer))}
		limit := time.Duration(float64(peer) * targetRatio)
		r.target = fmt.Sprintf("≤ %.2g× (%s)", targetRatio, ms(limit))
		if targetAbs > 0 && targetAbs < limit {
			limit = targetAbs
			r.target = fmt.Sprintf("≤ %.2g× and ≤ %s", targetRatio, ms(targetAbs))
		}
		r.met = yesNo(got <= limit)
		record(r)
	}
	add("cold", len(cold), median(cold), p.peerCold, p.coldRatio, 0)
	add("no change", len(noop), median(noop), p.peerNoop, 0.2, p.targetNoop)
	add("one file changed", len(one), median(one), p.peerOne, p.oneRatio, 0)
	return one, beside
}

// dropCaches writes dirty pages back, so that one cold build does not pay
// for the previous one's writeback; the page cache itself stays, as it
// would for a user who just edited the project.
func dropCaches() { _ = exec.Command("sync").Run() }

// BenchmarkBuildCopy5000 is PEERS.md's fourth project: 14 instructions in
// two stages, a 5000-file (50 MB) COPY from the context, a RUN over it,
// and the tree copied again into the final stage.
func BenchmarkBuildCopy5000(b *testing.B) {
	e := harness.New(b)
	e.LoadImage("busybox:latest")
	writeTree(b, filepath.Join(e.Dir, "src"), 50, 100, 10_000)
	e.WriteFile("Dockerfile", `FROM busybox:latest AS build
ARG VERSION=1
ENV APP=/src
WORKDIR /src
COPY src/ ./
RUN find . -type f | wc -l > /count
FROM busybox:latest
LABEL org.example.bench=copy5000
ENV PORT=8080
WORKDIR /app
COPY --from=build /src /app
COPY --from=build /count /
EXPOSE 8080
CMD ["sh", "-c", "cat /count"]
`)
	e.WriteFile("compose.yaml", "name: copy5000\nservices:\n  app:\n    build: .\n")

	// The machine's own speed at writing this tree now, for reading the
	// cold figure on a busy machine: cp -a of the context.
	var cps []time.Duration
	for range 3 {
		dst := filepath.Join(filepath.Dir(e.Root), "cp")
		dropCaches()
		start := time.Now()
		if out, err := exec.Command("cp", "-a", filepath.Join(e.Dir, "src"), dst).CombinedOutput(); err != nil {
			b.Fatalf("cp -a: %v: %s", err, out)
		}
		cps = append(cps, time.Since(start))
		os.RemoveAll(dst)
	}
	benchBuild(b, e, buildProject{
		name:       "14 instructions, 5000-file COPY (50 MB), 2 stages",
		peerCold:   2400 * time.Millisecond,
		peerNoop:   330 * time.Millisecond,
		peerOne:    1700 * time.Millisecond,
		targetNoop: 65 * time.Millisecond,
		coldRatio:  1,
		oneRatio:   0.5,
		touch:      "src/d00/f000.txt",
	})
	record(row{sec: secBuild, what: "cp -a of that 5000-file context (this machine now)", runs: len(cps), berth: ms(median(cps)), base: "—", source: "reference for the cold build", ratio: "—"})
	e.MustRun("builder", "prune", "-f")
}

// writeTree fills dir with dirs×files text files of size bytes each
// (source-like: words from a small vocabulary, so they compress as code
// does), the same for every run.
func writeTree(b *testing.B, dir string, dirs, files, size int) {
	rng := rand.New(rand.NewSource(1))
	words := strings.Fields("func return if err nil package import type struct string int for range var const defer go select case switch map chan interface byte error fmt Println context ctx value key")
	var buf []byte
	for d := range dirs {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range files {
			buf = buf[:0]
			for len(buf) < size {
				buf = append(buf, words[rng.Intn(len(words))]...)
				buf = append(buf, " \n\t"[rng.Intn(3)])
				buf = append(buf, fmt.Sprint(rng.Intn(1000))...)
				buf = append(buf, ' ')
			}
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d.txt", f)), buf[:size], 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkBuildGo is PEERS.md's first project: a Go backend in two
// stages, `go mod download` and `go build` with cache mounts, on Debian's
// golang-go (1.19, as the peer's base, with its standard library
// compiled) made offline by tests/debian, the binary copied into a final
// stage on the same base. The program needs nothing outside the standard
// library, so RUN needs no network (GOPROXY=off).
func BenchmarkBuildGo(b *testing.B) {
	e := harness.New(b)
	e.DebianImage("debian-go:bench", "golang-go")
	src := filepath.Join("testdata", "goapp")
	copyFiles(b, src, e.Dir)
	name := "Go backend, 2 stages, cache mounts (Debian golang-go)"
	// The floor under the one-file rebuild: the Dockerfile's own go build
	// of the same change without berth, run right after each of berth's,
	// so that both see the same load.
	floor, cleanup := goBuildFloor(b, e, "debian-go:bench", src, "handlers.go")
	defer cleanup()
	one, alone := benchBuild(b, e, buildProject{
		name:       name,
		peerCold:   5500 * time.Millisecond,
		peerNoop:   330 * time.Millisecond,
		peerOne:    1000 * time.Millisecond,
		targetNoop: 65 * time.Millisecond,
		coldRatio:  1,
		oneRatio:   0.5,
		touch:      "handlers.go",
		beside:     floor,
	})
	own := make([]time.Duration, len(one))
	for i := range one {
		own[i] = one[i] - alone[i]
	}
	b.Logf("one-file go build alone: %v; berth's own time: %v", alone, own)
	record(row{sec: secBuild, what: name + ": its one-file go build alone (chroot, no berth)", runs: len(alone), berth: ms(median(alone)), base: "—",
		source: "measured in this run, after each berth one-file rebuild: the build image's root in a chroot, GOCACHE warm", ratio: "—"})
	record(row{sec: secBuild, what: name + ": berth's own time in the one-file rebuild (berth − go build alone)", runs: len(own), berth: ms(median(own)), base: "—",
		source: "median of the differences of the pairs above", ratio: "—"})
	// The image it built runs.
	e.MustRun("up", "-d", "--wait")
	e.MustRun("down", "-t", "1")
	e.MustRun("builder", "prune", "-f")
}

// goBuildFloor prepares the Go project's one-file rebuild without berth:
// the Dockerfile's `go build` run directly, chrooted into an overlay of the
// build image's stored layers (so the image stays as it is) with /proc and
// /dev, the project's files in /src, GOCACHE fresh and warmed by one build.
// It returns a function that makes the same change to touch as benchBuild
// does and times the build, and one that undoes the mounts. The bench runs
// in a mount namespace of its own.
func goBuildFloor(b *testing.B, e *harness.Env, ref, src, touch string) (func(i int) time.Duration, func()) {
	var layers []string
	if err := json.Unmarshal([]byte(e.MustRun("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref).Stdout), &layers); err != nil {
		b.Fatal(err)
	}
	lower := make([]string, len(layers))
	for i, l := range layers {
		lower[len(layers)-1-i] = filepath.Join(e.Root, "image", "layers", strings.TrimPrefix(l, "sha256:"), "diff")
	}
	base := filepath.Join(filepath.Dir(e.Root), "floor")
	root, upper, work := filepath.Join(base, "root"), filepath.Join(base, "upper"), filepath.Join(base, "work")
	for _, d := range []string{root, upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	var undo []func()
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	undo = append(undo, func() { os.RemoveAll(base) })
	mount := func(src, target, fstype string, flags uintptr, data string) {
		if err := unix.Mount(src, target, fstype, flags, data); err != nil {
			cleanup()
			b.Fatal(err)
		}
		undo = append(undo, func() { unix.Unmount(target, unix.MNT_DETACH) })
	}
	mount("overlay", root, "overlay", 0, "lowerdir="+strings.Join(lower, ":")+",upperdir="+upper+",workdir="+work)
	mount("proc", filepath.Join(root, "proc"), "proc", 0, "")
	mount("/dev", filepath.Join(root, "dev"), "", unix.MS_BIND|unix.MS_REC, "")

	dir := filepath.Join(root, "src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	copyFiles(b, src, dir)
	build := func() time.Duration {
		cmd := exec.Command("chroot", root, "/bin/sh", "-c", "cd /src && go build -o /out/notes .")
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "GOPROXY=off", "GOCACHE=/root/.cache/go-build"}
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build in a chroot: %v: %s", err, out)
		}
		return time.Since(start)
	}
	build()
	return func(i int) time.Duration {
		appendChange(b, filepath.Join(dir, touch), i)
		return build()
	}, cleanup
}

// appendChange makes the i-th one-file change: a comment appended to f.
func appendChange(b *testing.B, f string, i int) {
	data, err := os.ReadFile(f)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(f, append(data, fmt.Sprintf("\n// change %d %d\n", i, time.Now().UnixNano())...), 0o644); err != nil {
		b.Fatal(err)
	}
}

// copyFiles copies the files of directory src into dst.
func copyFiles(b *testing.B, src, dst string) {
	ents, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	for _, ent := range ents {
		data, err := os.ReadFile(filepath.Join(src, ent.Name()))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, ent.Name()), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
