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
// devices; with Docker's seccomp profile and without) next to the same cycle
// straight on libcontainer with runc's example config.
func BenchmarkStart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
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
	kinds := []struct {
		name string
		run  func() error
	}{
		{"raw", e.raw},
		{"default", func() error { return e.engine(rt.SeccompDefault) }},
		{"unconfined", func() error { return e.engine(rt.SeccompUnconfined) }},
	}
	// One untimed cycle of each warms caches and checks the setup.
	for _, k := range kinds {
		if err := k.run(); err != nil {
			b.Fatalf("%s start: %v", k.name, err)
		}
	}
	took := make([][]time.Duration, len(kinds))
	for range b.N {
		for i := range startRuns {
			for j := range kinds {
				k := (i + j) % len(kinds)
				start := time.Now()
				if err := kinds[k].run(); err != nil {
					b.Fatalf("%s start: %v", kinds[k].name, err)
				}
				took[k] = append(took[k], time.Since(start))
			}
		}
	}
	raw, def, unc := median(took[0]), median(took[1]), median(took[2])
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(raw)/1e6, "raw-ms")
	b.ReportMetric(float64(def)/1e6, "engine-ms")
	b.ReportMetric(float64(unc)/1e6, "engine-unconfined-ms")
	src := "raw libcontainer, this run"
	record(row{sec: secStart, what: "engine in-process, Docker's seccomp profile", runs: len(took[1]), berth: ms(def), base: ms(raw), source: src, ratio: times(float64(def) / float64(raw))})
	record(row{sec: secStart, what: "engine in-process, seccomp unconfined", runs: len(took[2]), berth: ms(unc), base: ms(raw), source: src, ratio: times(float64(unc) / float64(raw))})
	record(row{sec: secStart, what: "raw libcontainer in-process (runc example config)", runs: len(took[0]), berth: ms(raw), base: "25–31 ms", source: "raw `runc run`, PEERS.md figure", ratio: "—"})
}

// engine makes one cycle through berth's runtime package.
func (e *startEnv) engine(mode rt.SeccompMode) error {
	e.seq++
	c, _, err := rt.Create(e.state, rt.Spec{
		ID:           fmt.Sprintf("e%d", e.seq),
		Rootfs:       e.rootfs,
		Args:         []string{"true"},
		Hostname:     "bench",
		CgroupParent: e.cgroupParent,
		Seccomp:      mode,
	})
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

// raw makes one cycle straight on libcontainer.
func (e *startEnv) raw() error {
	e.seq++
	id := fmt.Sprintf("r%d", e.seq)
	spec := specconv.Example()
	spec.Root.Path = e.rootfs
	spec.Root.Readonly = false
	spec.Process.Terminal = false
	spec.Process.Args = []string{"true"}
	spec.Linux.CgroupsPath = path.Join(e.cgroupParent, id)
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, Spec: spec})
	if err != nil {
		return err
	}
	c, err := libcontainer.Create(e.state, id, cfg)
	if err != nil {
		return err
	}
	p := &libcontainer.Process{Args: spec.Process.Args, Env: spec.Process.Env, Cwd: "/", Init: true}
	err = c.Run(p)
	if err == nil {
		_, err = p.Wait()
	}
	return errors.Join(err, c.Destroy())
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
