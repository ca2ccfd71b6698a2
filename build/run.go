package build

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/berthrun/berth/engine/runtime"
)

// tailLines is how much of a failing RUN's output its error repeats.
const tailLines = 10

// runArgs turns a RUN into the process to start: exec form as it is, shell
// form through the stage's SHELL, heredocs as BuildKit runs them (a single
// heredoc with a shebang becomes a script file; another single heredoc is
// the shell's command; anything else is handed to the shell whole). The
// returned files must be mounted at /dev/pipes.
func runArgs(c *instructions.RunCommand, shell []string) (args []string, files map[string]string, err error) {
	args = append([]string(nil), c.CmdLine...)
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, nil, fmt.Errorf("invalid heredoc RUN: %v", args)
		}
		if hd := parser.MustParseHeredoc(args[0]); hd != nil {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				name := path.Base(c.Files[0].Name)
				return []string{"/dev/pipes/" + name}, map[string]string{name: data}, nil
			}
			args = []string{data}
		} else {
			full := args[0]
			for _, f := range c.Files {
				full += "\n" + f.Data + f.Name
			}
			args = []string{full}
		}
	}
	if c.PrependShell {
		if len(shell) == 0 {
			shell = []string{"/bin/sh", "-c"}
		}
		args = append(append([]string(nil), shell...), strings.Join(args, " "))
	}
	return args, files, nil
}

// runSpec is one RUN container.
type runSpec struct {
	id      string // the container's
	rootfs  string
	args    []string
	env     []string
	workdir string
	user    string
	network string      // "default" (the build bridge), "host" or "none"
	net     *attachment // the bridge, for "default"
	files   map[string]string
	binds   []runtime.Mount
	tmpfs   map[string]string
	output  func(line string)
}

// RunError is a RUN that exited non-zero.
type RunError struct {
	Args []string
	Code int
	Tail []string // its last lines of output
}

func (e *RunError) Error() string {
	return fmt.Sprintf("process %q did not complete successfully: exit code: %d", strings.Join(e.Args, " "), e.Code)
}

// runContainer runs one RUN in a container of berth's engine with the
// confinement `up` gives a service (Docker's default capabilities and
// seccomp profile, masked paths, its own PID, IPC, UTS and mount
// namespaces), its output streamed line by line, and destroys it.
func (b *Builder) runContainer(ctx context.Context, rs runSpec) error {
	b.ranContainer.Store(true)
	id := rs.id
	usr, err := runtime.ResolveUser(rs.rootfs, rs.user, nil)
	if err != nil {
		return err
	}
	spec := runtime.Spec{
		ID:           id,
		Rootfs:       rs.rootfs,
		Args:         rs.args,
		Env:          rs.env,
		Cwd:          rs.workdir,
		User:         usr,
		Hostname:     "buildkitsandbox",
		CgroupParent: b.opts.CgroupParent,
	}
	spec.ShmSize = b.opts.ShmSize
	// Every RUN gets an /etc/hosts (localhost and compose's extra_hosts),
	// as BuildKit gives one; the mount point is left out of the layer.
	hosts, err := os.CreateTemp(b.tmpDir(), "hosts-")
	if err != nil {
		return err
	}
	defer os.Remove(hosts.Name())
	content := "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	for _, h := range b.opts.ExtraHosts {
		content += h + "\n"
	}
	_, err = hosts.WriteString(content)
	if cerr := hosts.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(hosts.Name(), 0o644); err != nil {
		return err
	}
	spec.Mounts = append(spec.Mounts, runtime.Mount{Source: hosts.Name(), Destination: "/etc/hosts", ReadOnly: true})
	spec.Mounts = append(spec.Mounts, rs.binds...)
	if len(rs.tmpfs) > 0 {
		spec.Tmpfs = rs.tmpfs
	}
	switch rs.network {
	case "host":
		spec.NetNSPath = fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: "/etc/resolv.conf", Destination: "/etc/resolv.conf", ReadOnly: true})
	case "none":
	case "default":
		ns, err := rs.net.wait()
		if err != nil {
			return err
		}
		// After the container is destroyed (defers run last first).
		defer b.detach(rs.net)
		spec.NetNSPath = ns
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: "/etc/resolv.conf", Destination: "/etc/resolv.conf", ReadOnly: true})
	default:
		return fmt.Errorf("network mode %q is not supported", rs.network)
	}
	if len(rs.files) > 0 {
		dir, err := os.MkdirTemp(b.tmpDir(), "pipes-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		for name, data := range rs.files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o755); err != nil {
				return err
			}
		}
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: dir, Destination: "/dev/pipes", ReadOnly: true})
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	spec.Stdio = runtime.Stdio{Stdout: w, Stderr: w}
	ctr, _, err := runtime.Create(b.opts.RuntimeRoot, spec)
	if err != nil {
		w.Close()
		return err
	}
	defer ctr.Destroy()
	err = ctr.Start()
	w.Close() // the container holds its own copy; EOF once it is gone
	if err != nil {
		return err
	}
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if rs.output != nil {
				rs.output(line)
			}
			tail = append(tail, line)
			if len(tail) > tailLines {
				tail = tail[1:]
			}
		}
	}()
	st, err := ctr.Wait(ctx)
	if err != nil {
		_ = ctr.Destroy()
		<-done
		return err
	}
	// Processes left behind die with the container's PID namespace; give
	// the reader their last output.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = ctr.Destroy()
		<-done
	}
	if st.Code != 0 {
		return &RunError{Args: rs.args, Code: st.Code, Tail: tail}
	}
	return nil
}

// mountpointStubs are paths the runtime creates in a rootfs that lacks
// them, to mount /proc, /sys, /dev, /etc/hosts and /etc/resolv.conf on;
// they are no part of a RUN's diff.
var mountpointStubs = []string{"/proc", "/sys", "/dev", "/dev/pipes", "/etc/resolv.conf", "/etc/hosts"}

// dropStubs removes from an upper directory the paths (parents first) that
// the rootfs did not have before, when they are empty.
func dropStubs(upper string, stubs []string) {
	for i := len(stubs) - 1; i >= 0; i-- {
		p := filepath.Join(upper, stubs[i])
		if fi, err := os.Lstat(p); err == nil && (fi.IsDir() || fi.Size() == 0) {
			_ = os.Remove(p) // fails, and keeps it, when not empty
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
