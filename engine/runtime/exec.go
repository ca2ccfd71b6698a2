package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// ExecSpec is a process to run in a running container (`berth exec`,
// health checks). It joins the container's namespaces and cgroup and gets
// its capabilities, seccomp filter and no_new_privs.
type ExecSpec struct {
	Args []string
	// Env is added to the container's environment, replacing same keys.
	Env []string
	// Cwd defaults to the container's working directory.
	Cwd string
	// User defaults to the container's user.
	User *User
	// Tty runs the process on a new pseudo-terminal; Stdin and Stdout are
	// copied to and from it (Stderr is unused).
	Tty bool
	// Detach starts the process and returns at once (`exec -d`); its stdio
	// is the container's /dev/null and the exit code returned is 0.
	Detach bool
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

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
	}
	if spec.Detach {
		return c.startDetached(p)
	}
	var parentSock *os.File
	if spec.Tty {
		parent, child, err := socketPair()
		if err != nil {
			return -1, err
		}
		defer parent.Close()
		defer child.Close()
		p.ConsoleSocket = child
		parentSock = parent
	} else {
		p.Stdin, p.Stdout, p.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	}
	if err := c.lc.Run(p); err != nil {
		return -1, fmt.Errorf("exec in %s: %w", c.id, err)
	}
	var copies sync.WaitGroup
	if parentSock != nil {
		master, err := recvFd(parentSock)
		if err != nil {
			_ = p.Signal(unix.SIGKILL)
			_, _ = p.Wait()
			return -1, fmt.Errorf("exec in %s: console: %w", c.id, err)
		}
		defer master.Close()
		if spec.Stdin != nil {
			go func() { _, _ = io.Copy(master, spec.Stdin) }()
		}
		if spec.Stdout != nil {
			copies.Add(1)
			go func() {
				defer copies.Done()
				_, _ = io.Copy(spec.Stdout, master) // ends with EIO once the pty's last slave closes
			}()
		}
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
	copies.Wait()
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
