package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	rt "github.com/berthrun/berth/engine/runtime"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"golang.org/x/sys/unix"
)

// startRuns is how many start→exit cycles each kind makes (the kinds take
// turns, so that none always runs on a warmer machine).
const startRuns = 20

// startEnv is a busybox rootfs, a state root and a cgroup parent of the
// start benchmark's own.
type startEnv struct {
	rootfs, state, cgroupParent string
	seq                         int
}

// BenchmarkStart times one container's create+start+wait+destroy of `true`
// through berth's engine (Docker's defaults: masked paths, capabilities,
// devices; with Docker's seccomp profile precompiled once, compiled by
// libseccomp in the init as runc alone does, and without seccomp) next to
// the same cycle straight on libcontainer with runc's example config. Wall
// time and CPU time (this process and the inits it reaps) are both shown:
// on a shared machine the CPU time is the steadier figure.
func BenchmarkStart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	e := newStartEnv(b)
	const precompileEnv = "BERTH_SECCOMP_PRECOMPILE"
	kinds := []struct {
		name string
		run  func() error
	}{
		{"raw", e.raw},
		{"precompiled", func() error { return e.engine(rt.SeccompDefault) }},
		{"init-compiled", func() error {
			os.Setenv(precompileEnv, "0")
			defer os.Unsetenv(precompileEnv)
			return e.engine(rt.SeccompDefault)
		}},
		{"unconfined", func() error { return e.engine(rt.SeccompUnconfined) }},
	}
	// One untimed cycle of each warms caches and checks the setup.
	for _, k := range kinds {
		if err := k.run(); err != nil {
			b.Fatalf("%s start: %v", k.name, err)
		}
	}
	took := make([][]time.Duration, len(kinds))
	cpu := make([][]time.Duration, len(kinds))
	for range b.N {
		for i := range startRuns {
			for j := range kinds {
				k := (i + j) % len(kinds)
				c0 := cpuTime()
				start := time.Now()
				if err := kinds[k].run(); err != nil {
					b.Fatalf("%s start: %v", kinds[k].name, err)
				}
				took[k] = append(took[k], time.Since(start))
				cpu[k] = append(cpu[k], cpuTime()-c0)
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	for k, kind := range kinds {
		b.ReportMetric(float64(median(took[k]))/1e6, kind.name+"-ms")
		b.ReportMetric(float64(median(cpu[k]))/1e6, kind.name+"-cpu-ms")
	}
	raw, rawCPU := median(took[0]), median(cpu[0])
	src := "raw libcontainer, this run"
	for k, what := range []string{
		1: "engine in-process, Docker's seccomp profile precompiled",
		2: "engine in-process, Docker's profile compiled in each init",
		3: "engine in-process, seccomp unconfined",
	} {
		if k == 0 {
			continue
		}
		d, c := median(took[k]), median(cpu[k])
		record(row{sec: secStart, what: what, runs: len(took[k]), berth: ms(d), base: ms(raw), source: src, ratio: times(float64(d) / float64(raw))})
		record(row{sec: secStart, what: what + ", CPU", runs: len(cpu[k]), berth: ms(c), base: ms(rawCPU), source: src + ", CPU", ratio: times(float64(c) / float64(rawCPU))})
	}
	record(row{sec: secStart, what: "raw libcontainer in-process (runc example config)", runs: len(took[0]), berth: ms(raw), base: "25–31 ms", source: "raw `runc run`, PEERS.md figure", ratio: "—"})
	note("container start: CPU is this process's and its reaped children's (the inits), user+system, median per start")
}

// newStartEnv makes a startEnv whose state and cgroups go at the end of b.
func newStartEnv(b *testing.B) *startEnv {
	e := &startEnv{
		rootfs:       filepath.Join(b.TempDir(), "rootfs"),
		state:        filepath.Join(b.TempDir(), "state"),
		cgroupParent: "/berth-bench-" + randHex(4),
	}
	if err := buildRootfs(e.rootfs); err != nil {
		b.Skipf("rootfs: %v", err)
	}
	b.Cleanup(func() {
		// cgroup v1 hierarchies, then the v2 unified one.
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + e.cgroupParent)
		for _, d := range append(dirs, "/sys/fs/cgroup"+e.cgroupParent) {
			_ = os.Remove(d)
		}
	})
	return e
}

// cpuTime returns the CPU time used by this process and its reaped children.
func cpuTime() time.Duration {
	var self, kids unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids)
	var d time.Duration
	for _, tv := range []unix.Timeval{self.Utime, self.Stime, kids.Utime, kids.Stime} {
		d += time.Duration(tv.Nano())
	}
	return d
}

// engine makes one cycle through berth's runtime package.
func (e *startEnv) engine(mode rt.SeccompMode) error {
	e.seq++
	c, err := e.engineCreate(fmt.Sprintf("e%d", e.seq), mode, "true")
	if err != nil {
		return err
	}
	err = func() error {
		if err := c.Start(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := c.Wait(ctx)
		if err == nil && st.Code != 0 {
			err = fmt.Errorf("exit status %+v", st)
		}
		return err
	}()
	return errors.Join(err, c.Destroy())
}

// engineCreate creates (not starts) a container of args through berth's
// runtime package, with Docker's defaults.
func (e *startEnv) engineCreate(id string, mode rt.SeccompMode, args ...string) (*rt.Container, error) {
	c, _, err := rt.Create(e.state, rt.Spec{
		ID:           id,
		Rootfs:       e.rootfs,
		Args:         args,
		Hostname:     "bench",
		CgroupParent: e.cgroupParent,
		Seccomp:      mode,
	})
	return c, err
}

// raw makes one cycle straight on libcontainer.
func (e *startEnv) raw() error {
	e.seq++
	c, p, err := e.rawRun(fmt.Sprintf("r%d", e.seq), "true")
	if err != nil {
		return err
	}
	_, err = p.Wait()
	return errors.Join(err, c.Destroy())
}

// rawRun creates and starts a container of args straight on libcontainer,
// with runc's example config; it returns once args has been exec'd. On
// error nothing of it is left.
func (e *startEnv) rawRun(id string, args ...string) (*libcontainer.Container, *libcontainer.Process, error) {
	spec := specconv.Example()
	spec.Root.Path = e.rootfs
	spec.Root.Readonly = false
	spec.Process.Terminal = false
	spec.Process.Args = args
	spec.Linux.CgroupsPath = path.Join(e.cgroupParent, id)
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, Spec: spec})
	if err != nil {
		return nil, nil, err
	}
	c, err := libcontainer.Create(e.state, id, cfg)
	if err != nil {
		return nil, nil, err
	}
	p := &libcontainer.Process{Args: spec.Process.Args, Env: spec.Process.Env, Cwd: "/", Init: true}
	if err := c.Run(p); err != nil {
		return nil, nil, errors.Join(err, c.Destroy())
	}
	return c, p, nil
}

// buildRootfs makes a minimal root filesystem from Debian's static busybox.
func buildRootfs(root string) error {
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	src, err := os.Open("/bin/busybox")
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(root, "bin/busybox"), os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	for _, a := range []string{"sh", "true", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
