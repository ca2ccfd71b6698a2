package build

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/engine/runtime"
)

// sshAgent is what one SSH id forwards into RUN --mount=type=ssh: an
// agent socket on the host (`--ssh default` is $SSH_AUTH_SOCK), or
// private key files served by an agent of berth's own.
type sshAgent struct {
	socket  string      // forward connections here, or
	keyring agent.Agent // answer them from these keys
}

// resolveSSH makes ready the agent for id from Options.SSH: no paths means
// $SSH_AUTH_SOCK; one path that is a socket is forwarded; otherwise the
// paths are private keys (unencrypted) loaded into an in-memory agent.
func resolveSSH(id string, paths []string) (*sshAgent, error) {
	if len(paths) == 0 {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, fmt.Errorf("ssh %s: SSH_AUTH_SOCK is not set (give key files: --ssh %s=PATH)", id, id)
		}
		paths = []string{sock}
	}
	if len(paths) == 1 {
		if fi, err := os.Stat(paths[0]); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return &sshAgent{socket: paths[0]}, nil
		}
	}
	ring := agent.NewKeyring()
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("ssh %s: %w", id, err)
		}
		key, err := ssh.ParseRawPrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("ssh %s: %s: %w", id, p, err)
		}
		if err := ring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
			return nil, fmt.Errorf("ssh %s: %s: %w", id, p, err)
		}
	}
	return &sshAgent{keyring: ring}, nil
}

// agentFor returns the build's agent for id, made once per build; nil
// when the build was given no such id.
func (b *Builder) agentFor(id string) (*sshAgent, error) {
	paths, ok := b.opts.SSH[id]
	if !ok {
		return nil, nil
	}
	b.sshMu.Lock()
	defer b.sshMu.Unlock()
	if a, ok := b.agents[id]; ok {
		return a, nil
	}
	a, err := resolveSSH(id, paths)
	if err != nil {
		return nil, err
	}
	if b.agents == nil {
		b.agents = map[string]*sshAgent{}
	}
	b.agents[id] = a
	return a, nil
}

// sshMount serves RUN --mount=type=ssh: a socket of its own, made for
// this RUN (in a directory only root can enter) with the mount's owner and mode (BuildKit's 0600 root by
// default), bound at the target (/run/buildkit/ssh_agent.N by default);
// each connection to it reaches the id's agent. Nothing of it enters the
// step's key beyond the instruction's text.
func (b *Builder) sshMount(m *runMounts, mt *instructions.Mount, target string, n int) error {
	id := mt.CacheID
	if id == "" {
		id = "default"
	}
	a, err := b.agentFor(id)
	if err != nil {
		return err
	}
	if a == nil {
		if mt.Required {
			return fmt.Errorf("no SSH key %q forwarded from the client (berth build --ssh %s, or compose build.ssh)", id, id)
		}
		return nil
	}
	if target == "" {
		target = fmt.Sprintf("/run/buildkit/ssh_agent.%d", n)
	}
	dir, err := sshDir()
	if err != nil {
		return err
	}
	m.release = append(m.release, func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	m.release = append(m.release, func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	if err := ownAsMount(sock, mt, 0o600); err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				a.serve(c)
			}()
		}
	}()
	m.binds = append(m.binds, runtime.Mount{Source: sock, Destination: target})
	m.targets = append(m.targets, target)
	if m.sshSock == "" {
		m.sshSock = target
	}
	return nil
}

// sshDir makes the directory of one ssh mount's socket: in the system's
// temporary directory rather than under the store, as a socket's path
// must fit in 108 bytes whatever BERTH_ROOT is. Its name carries the
// builder's PID, so that the directories of a builder that was killed
// before it could remove them are removed by the next one.
func sshDir() (string, error) {
	tmp := os.TempDir()
	if old, err := filepath.Glob(filepath.Join(tmp, "berth-ssh-*-*")); err == nil {
		for _, d := range old {
			pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(filepath.Base(d), "berth-ssh-"), "-", 2)[0])
			if err == nil && pid > 0 && unix.Kill(pid, 0) == unix.ESRCH {
				os.RemoveAll(d)
			}
		}
	}
	return os.MkdirTemp(tmp, fmt.Sprintf("berth-ssh-%d-", os.Getpid()))
}

// serve answers one client of the mount's socket.
func (a *sshAgent) serve(c net.Conn) {
	if a.keyring != nil {
		_ = agent.ServeAgent(a.keyring, c)
		return
	}
	up, err := net.Dial("unix", a.socket)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, c)
		if uc, ok := up.(*net.UnixConn); ok {
			_ = uc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(c, up)
	if uc, ok := c.(*net.UnixConn); ok {
		_ = uc.CloseWrite()
	}
	<-done
}
