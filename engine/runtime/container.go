package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/internal/errdefs"
)

// Errors callers branch on: berth's kinds (internal/errdefs) with the
// runtime's own texts.
var (
	ErrNotFound      = errdefs.Derive(errdefs.ErrNotFound, "container not found")
	ErrAlreadyExists = errdefs.Derive(errdefs.ErrAlreadyExists, "container already exists")
	ErrNotRunning    = errdefs.Derive(errdefs.ErrFailedPrecondition, "container not running")
	// ErrPaused is returned by Exec in a paused container, as docker's.
	ErrPaused = errdefs.Derive(errdefs.ErrFailedPrecondition, "container is paused, unpause the container before exec")
	// ErrNotStarted is returned by Wait on a container that was never started.
	ErrNotStarted = errdefs.Derive(errdefs.ErrFailedPrecondition, "container not started")
)

// metaLabel is the label of libcontainer's config that holds what berth
// needs beyond libcontainer's own state to serve a loaded container
// (defaults for Exec), as JSON: it is saved with libcontainer's state,
// where a file of its own beside it cost an inode per start (about 1 ms of
// CPU on an ext4 without journal under churn).
const metaLabel = "berth.meta="

// metaFile held the same before metaLabel, in libcontainer's state
// directory: containers started by an earlier berth still have it.
const metaFile = "berth.json"

type meta struct {
	Env  []string `json:"env"`
	Cwd  string   `json:"cwd"`
	User User     `json:"user"`
}

// Container is one container of a state root. A Container returned by
// Create is the parent of the container's init and can reap its exit
// status; one returned by Load can do everything else.
type Container struct {
	id   string
	root string
	lc   *libcontainer.Container
	meta meta
	// lcMu keeps Destroy from removing the cgroup paths while another
	// goroutine reads them (libcontainer does not guard its cgroup
	// manager's map): a waiter reading the OOM counter while a stopper
	// destroys the container.
	lcMu sync.Mutex
	// freezeGate orders the start of an exec'd process against freezing:
	// libcontainer holds its container lock while a new process's init
	// reports in, and an init that joins a frozen cgroup freezes before it
	// does, so a Resume (behind the same lock) would never come. Starts
	// hold it shared; Pause, and Freeze until its thaw, hold it alone.
	freezeGate sync.RWMutex

	stdio    Stdio
	terminal bool

	mu      sync.Mutex
	proc    *libcontainer.Process // nil for a loaded container
	console *os.File
	done    chan struct{} // closed once proc is reaped
	exit    ExitStatus
	waitErr error
	gone    bool // destroyed
}

// Create validates spec, applies Docker's defaults and sets up the
// container's state directory under stateRoot and its cgroup. The process
// starts with Start. Warnings report settings that were adjusted (for
// example ulimits clamped to berth's own hard limit).
func Create(stateRoot string, spec Spec) (*Container, []string, error) {
	if !filepath.IsAbs(stateRoot) {
		return nil, nil, fmt.Errorf("state root %q must be an absolute path", stateRoot)
	}
	if spec.Init {
		bin := spec.InitBinary
		if bin == "" {
			exe, err := os.Executable()
			if err != nil {
				return nil, nil, fmt.Errorf("init: %w", err)
			}
			bin = exe
		}
		spec = WithInit(spec, bin)
	}
	if spec.Hostname == "" {
		// Docker names the host after the container; never leave the
		// new UTS namespace with the host's name.
		spec.Hostname = spec.ID[:min(len(spec.ID), 63)]
	}
	spec.Env = defaultEnv(spec.Env, spec.User.Home, spec.Hostname)
	cfg, warnings, err := libcontainerConfig(&spec)
	if err != nil {
		return nil, nil, err
	}
	m := meta{Env: spec.Env, Cwd: cwdOrRoot(spec.Cwd), User: spec.User}
	label, err := json.Marshal(m)
	if err != nil {
		return nil, nil, err
	}
	cfg.Labels = append(cfg.Labels, metaLabel+string(label))
	lc, err := libcontainer.Create(stateRoot, spec.ID, cfg)
	if err != nil {
		if errors.Is(err, libcontainer.ErrExist) {
			return nil, nil, fmt.Errorf("%s: %w", spec.ID, ErrAlreadyExists)
		}
		return nil, nil, fmt.Errorf("create %s: %w", spec.ID, err)
	}
	c := &Container{
		id:       spec.ID,
		root:     stateRoot,
		lc:       lc,
		meta:     m,
		stdio:    spec.Stdio,
		terminal: spec.Terminal,
	}
	c.proc = &libcontainer.Process{
		Args:             spec.Args,
		Env:              spec.Env,
		Cwd:              cwdOrRoot(spec.Cwd),
		UID:              spec.User.UID,
		GID:              spec.User.GID,
		AdditionalGroups: spec.User.AdditionalGIDs,
		Init:             true,
	}
	return c, warnings, nil
}

// defaultEnv adds PATH, HOME and HOSTNAME when env has none, as Docker does.
func defaultEnv(env []string, home, hostname string) []string {
	out := append([]string(nil), env...)
	has := func(k string) bool {
		for _, e := range out {
			if strings.HasPrefix(e, k+"=") {
				return true
			}
		}
		return false
	}
	if !has("PATH") {
		out = append(out, "PATH="+DefaultPath)
	}
	if hostname != "" && !has("HOSTNAME") {
		out = append(out, "HOSTNAME="+hostname)
	}
	if !has("HOME") {
		if home == "" {
			home = "/"
		}
		out = append(out, "HOME="+home)
	}
	return out
}

func (c *Container) stateDir() string { return filepath.Join(c.root, c.id) }

// Load adopts container id of stateRoot, created by this or another process.
// Everything but reaping works on it: Wait observes the exit through a
// pidfd and reports the exit code as unknown.
func Load(stateRoot, id string) (*Container, error) {
	lc, err := libcontainer.Load(stateRoot, id)
	if err != nil {
		if errors.Is(err, libcontainer.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("load %s: %w", id, err)
	}
	c := &Container{id: id, root: stateRoot, lc: lc}
	var data []byte
	for _, l := range lc.Config().Labels {
		if v, ok := strings.CutPrefix(l, metaLabel); ok {
			data = []byte(v)
		}
	}
	if data == nil {
		if data, err = os.ReadFile(filepath.Join(c.stateDir(), metaFile)); err != nil {
			return nil, fmt.Errorf("load %s: %w", id, err)
		}
	}
	if err := json.Unmarshal(data, &c.meta); err != nil {
		return nil, fmt.Errorf("load %s: container metadata: %w", id, err)
	}
	return c, nil
}

// ID returns the container's ID.
func (c *Container) ID() string { return c.id }

// Start starts the container's command. It returns once the command has
// been exec'd inside the container.
func (c *Container) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil || c.done != nil {
		return errors.New("start: container already started or not created by this process")
	}
	var closers []*os.File
	defer func() {
		for _, f := range closers {
			f.Close()
		}
	}()
	var sock *os.File
	if c.terminal {
		parent, child, err := socketPair()
		if err != nil {
			return err
		}
		closers = append(closers, parent, child)
		c.proc.ConsoleSocket = child
		sock = parent
	} else {
		in, out, errf, opened, err := openStdio(c.stdio)
		closers = append(closers, opened...)
		if err != nil {
			return err
		}
		c.proc.Stdin, c.proc.Stdout, c.proc.Stderr = in, out, errf
	}
	c.proc.ExtraFiles = withPrecompiledSeccomp(c.proc.ExtraFiles, c.lc.Config().Seccomp)
	if err := c.lc.Run(c.proc); err != nil {
		return fmt.Errorf("start %s: %w", c.id, classifyStart(err))
	}
	if sock != nil {
		master, err := recvFd(sock)
		if err != nil {
			_ = c.lc.Signal(unix.SIGKILL)
			_, _ = c.proc.Wait()
			return fmt.Errorf("start %s: console: %w", c.id, err)
		}
		c.console = master
	}
	c.done = make(chan struct{})
	go c.reap(c.proc, c.done)
	if pid, err := c.proc.Pid(); err == nil {
		waitExec(pid)
	}
	return nil
}

// initComm is the name libcontainer's init has until it execs the command.
const initComm = "runc:[2:INIT]"

// waitExec waits (briefly) until pid has exec'd the container's command.
// libcontainer returns from Run just before that execve; a signal arriving
// in between reaches libcontainer's Go init instead of the command (where
// SIGTERM turns into exit code 2 rather than being ignored by PID 1).
func waitExec(pid int) {
	comm := "/proc/" + strconv.Itoa(pid) + "/comm"
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		data, err := os.ReadFile(comm)
		if err != nil || strings.TrimSpace(string(data)) != initComm {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// reap waits for the init process and records its exit status.
func (c *Container) reap(p *libcontainer.Process, done chan struct{}) {
	if pid, err := p.Pid(); err == nil {
		// Until it has exited, in the poller: Wait's waitid would hold
		// a thread. Should that fail, Wait still waits.
		_ = waitExit(context.Background(), pid)
	}
	ps, err := p.Wait()
	st := ExitStatus{Code: -1, ExitedAt: time.Now()}
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			st.Code = waitCode(ws)
			err = nil
		}
	}
	st.OOMKilled = c.oomKilled()
	c.mu.Lock()
	c.exit, c.waitErr = st, err
	c.mu.Unlock()
	close(done)
}

func waitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return -1
}

// oomKilled reads the kernel's OOM-kill counter of the container's memory
// cgroup (memory.oom_control on v1, memory.events on v2).
func (c *Container) oomKilled() bool {
	// The state's CgroupPaths is libcontainer's own map: read it under
	// the lock too.
	c.lcMu.Lock()
	st, err := c.lc.State()
	var file string
	if err == nil {
		if cgroups.IsCgroup2UnifiedMode() {
			file = filepath.Join(st.CgroupPaths[""], "memory.events")
		} else if p := st.CgroupPaths["memory"]; p != "" {
			file = filepath.Join(p, "memory.oom_control")
		}
	}
	c.lcMu.Unlock()
	if file == "" {
		return false
	}
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == "oom_kill" {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n > 0
		}
	}
	return false
}

// Console returns the master side of the container's pseudo-terminal
// (Spec.Terminal), or nil. The Container owns it: Destroy closes it.
func (c *Container) Console() *os.File {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.console
}

// Pid returns the host PID of the container's init, or 0 if it is not running.
func (c *Container) Pid() int {
	st, err := c.State()
	if err != nil {
		return 0
	}
	return st.Pid
}

// Signal sends sig to the container's init.
func (c *Container) Signal(sig os.Signal) error {
	if err := c.lc.Signal(sig); err != nil {
		if errors.Is(err, libcontainer.ErrNotRunning) {
			return fmt.Errorf("%s: %w", c.id, ErrNotRunning)
		}
		return fmt.Errorf("signal %s: %w", c.id, err)
	}
	return nil
}

// Wait blocks until the container's init has exited or ctx is done. For a
// container this process started, it returns the reaped status. For a
// loaded one it waits on a pidfd, and the status has Unknown set: only the
// parent can learn the exit code. OOMKilled is reported in both cases
// while the cgroup exists.
func (c *Container) Wait(ctx context.Context) (ExitStatus, error) {
	c.mu.Lock()
	proc, done := c.proc, c.done
	c.mu.Unlock()
	if proc != nil {
		if done == nil {
			return ExitStatus{}, ErrNotStarted
		}
		select {
		case <-done:
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.exit, c.waitErr
		case <-ctx.Done():
			return ExitStatus{}, ctx.Err()
		}
	}
	if err := c.waitPidfd(ctx); err != nil {
		return ExitStatus{}, err
	}
	return ExitStatus{Code: -1, Unknown: true, OOMKilled: c.oomKilled(), ExitedAt: time.Now()}, nil
}

// waitPidfd waits for the init recorded in libcontainer's state to exit.
// The pidfd is checked against the recorded start time, so a recycled PID
// counts as exited.
func (c *Container) waitPidfd(ctx context.Context) error {
	st, err := c.lc.State()
	if err != nil {
		return err
	}
	pid := st.InitProcessPid
	if pid <= 0 {
		return nil
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	if start, err := procStartTime(pid); err != nil || start != st.InitProcessStartTime {
		unix.Close(fd)
		return nil // gone, or the PID now belongs to someone else
	}
	err = pollExit(ctx, fd)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("wait for pid %d: %w", pid, err)
	}
	return err
}

// procStartTime reads the start time (clock ticks after boot) of pid, field
// 22 of /proc/<pid>/stat, as libcontainer records it.
func procStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, errors.New("bad stat")
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// KillWait bounds the wait for an init to exit after SIGKILL; past it Stop
// reports an error instead of waiting for ever.
const KillWait = 10 * time.Second

// Stop sends sig (SIGTERM when nil) to the init, waits up to grace for it
// to exit, then kills it and waits up to KillWait. It returns when the init
// is gone, when ctx is done, or with an error once KillWait has passed.
func (c *Container) Stop(ctx context.Context, sig os.Signal, grace time.Duration) error {
	if sig == nil {
		sig = unix.SIGTERM
	}
	gone, serr := c.signalInit(sig)
	if gone {
		return nil
	}
	if serr == nil {
		gctx, cancel := context.WithTimeout(ctx, grace)
		_, err := c.Wait(gctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	// The grace period has passed, or the stop signal could not be sent:
	// kill.
	gone, kerr := c.signalInit(unix.SIGKILL)
	if gone {
		return nil
	}
	if kerr != nil {
		return errors.Join(serr, kerr)
	}
	kctx, cancel := context.WithTimeout(ctx, KillWait)
	defer cancel()
	if _, err := c.Wait(kctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("stop %s: still running %v after SIGKILL: %w", c.id, KillWait, err)
	}
	return nil
}

// signalInit sends sig to the container's init and reports whether the init
// is known to be gone. libcontainer refuses to signal an init it cannot see
// alive, and it looks by reading /proc/PID/stat, which fails when this
// process is out of descriptors: it then reports the container stopped and
// a stop waited for an exit that never came. So a refusal is checked here,
// signalling directly where no other process can hold the PID: a child not
// yet reaped, or a pidfd of the recorded PID whose start time matches.
func (c *Container) signalInit(sig os.Signal) (gone bool, err error) {
	err = c.Signal(sig)
	if err == nil || !errors.Is(err, ErrNotRunning) {
		return false, err
	}
	c.mu.Lock()
	proc, done := c.proc, c.done
	c.mu.Unlock()
	if proc != nil {
		if done == nil {
			return true, nil // never started
		}
		select {
		case <-done:
			return true, nil
		default:
		}
		// Still our unreaped child: its PID is ours until the reaper
		// waits for it.
		if err := proc.Signal(sig); err != nil {
			if errors.Is(err, os.ErrProcessDone) {
				return true, nil
			}
			return false, fmt.Errorf("signal %s: %w", c.id, err)
		}
		return false, nil
	}
	return c.signalRecorded(sig)
}

// signalRecorded signals the init recorded in libcontainer's state through
// a pidfd, once its start time shows the PID still is that init.
func (c *Container) signalRecorded(sig os.Signal) (gone bool, err error) {
	s, ok := sig.(unix.Signal)
	if !ok {
		return false, fmt.Errorf("signal %s: unsupported signal %v", c.id, sig)
	}
	c.lcMu.Lock()
	st, err := c.lc.State()
	c.lcMu.Unlock()
	if err != nil {
		return false, fmt.Errorf("signal %s: %w", c.id, err)
	}
	pid := st.InitProcessPid
	if pid <= 0 {
		return true, nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return true, nil
		}
		return false, fmt.Errorf("signal %s: pidfd_open %d: %w", c.id, pid, err)
	}
	defer unix.Close(fd)
	start, err := procStartTime(pid)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("signal %s: cannot tell whether PID %d is still its init: %w", c.id, pid, err)
	case start != st.InitProcessStartTime:
		return true, nil // the PID now belongs to someone else
	}
	if err := unix.PidfdSendSignal(fd, s, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return true, nil
		}
		return false, fmt.Errorf("signal %s: %w", c.id, err)
	}
	return false, nil
}

// Pause freezes every process of the container (cgroup freezer).
func (c *Container) Pause() error {
	c.freezeGate.Lock()
	defer c.freezeGate.Unlock()
	if err := c.lc.Pause(); err != nil {
		return fmt.Errorf("pause %s: %w", c.id, err)
	}
	return nil
}

// Freeze pauses the container for a moment (a copy into it) and returns
// what thaws it; no exec'd process starts in between: one asked for
// waits for the thaw.
func (c *Container) Freeze() (thaw func() error, err error) {
	c.freezeGate.Lock()
	if err := c.lc.Pause(); err != nil {
		c.freezeGate.Unlock()
		return nil, fmt.Errorf("pause %s: %w", c.id, err)
	}
	return func() error {
		defer c.freezeGate.Unlock()
		if err := c.lc.Resume(); err != nil {
			return fmt.Errorf("resume %s: %w", c.id, err)
		}
		return nil
	}, nil
}

// runProcess starts an exec'd process, unless the container is paused
// (see freezeGate).
func (c *Container) runProcess(p *libcontainer.Process) error {
	c.freezeGate.RLock()
	defer c.freezeGate.RUnlock()
	if st, err := c.lc.Status(); err == nil && st == libcontainer.Paused {
		return ErrPaused
	}
	return c.lc.Run(p)
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	if err := c.lc.Resume(); err != nil {
		return fmt.Errorf("resume %s: %w", c.id, err)
	}
	return nil
}

// Processes returns the host PIDs of every process in the container's cgroup.
func (c *Container) Processes() ([]int, error) {
	return c.lc.Processes()
}

// State returns the container's status and init PID.
func (c *Container) State() (State, error) {
	c.mu.Lock()
	gone := c.gone
	c.mu.Unlock()
	if gone {
		return State{ID: c.id, Status: StatusStopped}, nil
	}
	status, err := c.lc.Status()
	if err != nil {
		return State{}, fmt.Errorf("state %s: %w", c.id, err)
	}
	st, err := c.lc.State()
	if err != nil {
		return State{}, fmt.Errorf("state %s: %w", c.id, err)
	}
	out := State{ID: c.id, Started: st.Created}
	switch status {
	case libcontainer.Created:
		out.Status = StatusCreated
	case libcontainer.Running:
		out.Status = StatusRunning
	case libcontainer.Paused:
		out.Status = StatusPaused
	default:
		out.Status = StatusStopped
	}
	if out.Status != StatusStopped {
		out.Pid = st.InitProcessPid
	}
	return out, nil
}

// Destroy kills the container if it still runs, then removes its cgroups
// and state. It is idempotent.
func (c *Container) Destroy() error {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	if status, err := c.lc.Status(); err == nil && status != libcontainer.Stopped {
		if err := c.lc.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			return fmt.Errorf("destroy %s: %w", c.id, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.Wait(ctx)
		cancel()
		if err != nil && !errors.Is(err, ErrNotStarted) {
			return fmt.Errorf("destroy %s: waiting for exit: %w", c.id, err)
		}
	}
	// Let the reaper read the OOM counter before the cgroup goes away.
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	}
	c.lcMu.Lock()
	err := c.lc.Destroy()
	c.lcMu.Unlock()
	if err != nil {
		return fmt.Errorf("destroy %s: %w", c.id, err)
	}
	if err := os.RemoveAll(c.stateDir()); err != nil {
		return fmt.Errorf("destroy %s: %w", c.id, err)
	}
	c.mu.Lock()
	c.gone = true
	if c.console != nil {
		c.console.Close()
		c.console = nil
	}
	c.mu.Unlock()
	return nil
}
