package runtime

import (
	"context"
	"fmt"
	"path"
	"testing"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
)

// BenchmarkStartExit measures Create+Start+Wait+Destroy of `true` with
// berth's defaults (masked paths, capabilities, devices), with Docker's
// seccomp profile and without it: the filter is compiled by libseccomp in
// every container's init and dominates the difference to the raw baseline.
func BenchmarkStartExit(b *testing.B) {
	b.Run("default", func(b *testing.B) { benchStartExit(b, SeccompDefault) })
	b.Run("unconfined", func(b *testing.B) { benchStartExit(b, SeccompUnconfined) })
}

func benchStartExit(b *testing.B, mode SeccompMode) {
	e := newEnv(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := e.spec("true")
		s.Seccomp = mode
		c, _, err := Create(e.state, s)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		if st, err := c.Wait(ctx); err != nil || st.Code != 0 {
			b.Fatalf("wait: %+v %v", st, err)
		}
		if err := c.Destroy(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawLibcontainer is the same cycle straight on libcontainer with
// runc's example config (no seccomp), as a baseline for berth's overhead.
func BenchmarkRawLibcontainer(b *testing.B) {
	e := newEnv(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("raw%d", i)
		spec := specconv.Example()
		spec.Root.Path = e.rootfs
		spec.Root.Readonly = false
		spec.Process.Terminal = false
		spec.Process.Args = []string{"true"}
		spec.Linux.CgroupsPath = path.Join(e.cgroupParent, id)
		cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, Spec: spec})
		if err != nil {
			b.Fatal(err)
		}
		c, err := libcontainer.Create(e.state, id, cfg)
		if err != nil {
			b.Fatal(err)
		}
		p := &libcontainer.Process{Args: spec.Process.Args, Env: spec.Process.Env, Cwd: "/", Init: true}
		if err := c.Run(p); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Wait(); err != nil {
			b.Fatal(err)
		}
		if err := c.Destroy(); err != nil {
			b.Fatal(err)
		}
	}
}
