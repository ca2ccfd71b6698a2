package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// ExecSpec is a process to run in a running container (`berth exec`,
// health checks). It joins the container's namespaces and cgroup and gets
// its capabilities, seccomp filter and no_new_privs.
//
// The process never gets the caller's descriptors: its stdio are pipes (or
// a pseudo-terminal) that Exec creates and copies to and from Stdin,
// Stdout and Stderr, whatever they are. A descriptor handed to a container
// is reachable by every process in it (through /proc/PID/fd), for as long
// as one of them cares to keep it; a pipe of berth's is closed when the
// exec ends.
type ExecSpec struct {
	Args []string
	// Env is added to the container's environment, replacing same keys.
	Env []string
	// Cwd defaults to the container's working directory.
	Cwd string
	// User defaults to the container's user.
	User *User
	// Tty runs the process on a new pseudo-terminal; Stdin and Stdout are
	// copied to and from it (Stderr is unused). Size is the terminal's
	// size at the start, and Resize brings later sizes.
	Tty    bool
	Size   WinSize
	Resize <-chan WinSize
	// Stdin, when set, is copied to the process until it ends (io.EOF
	// closes the process's stdin); nil gives it end-of-file at once.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output; nil discards it.
	Stdout io.Writer
	Stderr io.Writer
	// Detach starts the process and returns at once (`exec -d`) with
	// code 0; its stdio is the container's own /dev/null.
	Detach bool
}

// WinSize is a terminal's size in characters; zero fields are left as
// the kernel has them.
type WinSize struct {
	Rows, Cols uint16
}

// drainIdle is how long Exec keeps reading a process's output after the
// process exited, as long as the output keeps coming: what it wrote just
// before exiting is still in the pipe, but a process it left behind may
// hold the pipe open for ever.
const drainIdle = 250 * time.Millisecond

// Exec runs spec in the container and returns its exit code (128+signal if
// killed). When ctx is done the process is killed.
func (c *Container) Exec(ctx context.Context, spec ExecSpec) (int, error) {
	if len(spec.Args) == 0 {
		return -1, errors.New("exec: no command")
	}
	u := c.meta.User
	if spec.User != nil {
		u = *spec.User
	}
	cwd := spec.Cwd
	if cwd == "" {
		cwd = c.meta.Cwd
	}
	env := mergeEnv(c.meta.Env, spec.Env)
	env = defaultEnv(env, u.Home, "")

	cfg := c.lc.Config()
	var caps *configs.Capabilities
	if cfg.Capabilities != nil {
		// The container's set, with effective/permitted only for root, as
		// for the container's own command.
		cp := *cfg.Capabilities
		cp.Effective, cp.Permitted = nil, nil
		if u.UID == 0 {
			cp.Effective, cp.Permitted = cp.Bounding, cp.Bounding
		}
		caps = &cp
	}
	p := &libcontainer.Process{
		Args:             spec.Args,
		Env:              env,
		Cwd:              cwd,
		UID:              u.UID,
		GID:              u.GID,
		AdditionalGroups: u.AdditionalGIDs,
		Capabilities:     caps,
		Init:             false,
		ExtraFiles:       withPrecompiledSeccomp(nil, cfg.Seccomp),
	}
	if spec.Detach {
		return c.startDetached(p)
	}
	sio, err := newExecIO(p, spec)
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", c.id, err)
	}
	defer sio.close()
	if err := c.runProcess(p); err != nil {
		return -1, fmt.Errorf("exec in %s: %w", c.id, classifyStart(err))
	}
	if err := sio.started(); err != nil {
		_ = p.Signal(unix.SIGKILL)
		_, _ = p.Wait()
		return -1, fmt.Errorf("exec in %s: %w", c.id, err)
	}

	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = p.Signal(unix.SIGKILL)
		case <-done:
		}
	}()
	ps, err := p.Wait()
	close(done)
	sio.exited()
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			if ctx.Err() != nil {
				return waitCode(ws), ctx.Err()
			}
			return waitCode(ws), nil
		}
	}
	return -1, fmt.Errorf("exec in %s: %w", c.id, err)
}

// mergeEnv overlays extra on base by key.
func mergeEnv(base, extra []string) []string {
	out := append([]string(nil), base...)
	for _, e := range extra {
		k, _, _ := strings.Cut(e, "=")
		replaced := false
		for i, o := range out {
			if ok, _, _ := strings.Cut(o, "="); ok == k {
				out[i] = e
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return out
}
