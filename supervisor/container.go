package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/engine/logs"
	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/internal/fault"
)

// container is one container as its supervisor holds it. Its record is the
// truth on disk; mu guards the record and the fields below.
type container struct {
	s   *Supervisor
	mu  sync.Mutex
	rec *Record
	ctr *runtime.Container // the running libcontainer container, nil between runs

	exited   chan struct{} // closed when the current run has ended and been recorded
	capture  sync.WaitGroup
	logFile  *logs.File
	backoff  time.Duration
	restartT *time.Timer
	leaving  bool // being scaled away: no new connections

	hub     *hub // attached clients (see attach.go)
	hubOnce sync.Once
	// runStdin is the write end of an interactive one-off's stdin pipe,
	// runStdinR the read end until the process holds it (see run.go).
	runStdin, runStdinR *os.File
	removed             chan struct{} // closed once an auto-removed container is gone

	saved atomic.Pointer[Record] // what save wrote last, for snapshot
}

// newContainer holds rec, which is on disk as it is.
func newContainer(s *Supervisor, rec *Record) *container {
	c := &container{s: s, rec: rec}
	r := *rec
	c.saved.Store(&r)
	return c
}

func (c *container) record() Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := *c.rec
	return r
}

func (c *container) isLeaving() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaving
}

// snapshot returns the record as last saved, without waiting for c.mu,
// which a start or a removal holds for as long as it takes: ps must answer
// meanwhile.
func (c *container) snapshot() Record {
	if r := c.saved.Load(); r != nil {
		return *r
	}
	return c.record()
}

func (c *container) save() error {
	r := *c.rec
	c.saved.Store(&r)
	return saveRecord(c.s.paths, c.rec)
}

// start runs the container: a fresh libcontainer container from the spec
// in the record (a stopped one cannot be started again), its output drained
// into the log file, and a goroutine waiting for its exit. op names the
// operation for the fault hook's steps: "start", or "restart" for a restart
// policy's. A start that fails leaves the container exited with the error
// in its record, never half started.
func (c *container) start(op string) (err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctr != nil {
		return nil // running already
	}
	if c.restartT != nil {
		c.restartT.Stop()
		c.restartT = nil
	}
	defer func() {
		if err != nil && c.ctr == nil {
			c.rec.State.Status = StatusExited
			c.rec.State.Pid = 0
			c.rec.State.Error = err.Error()
			c.rec.State.ExitCode = startFailureCode(err)
			c.rec.State.FinishedAt = time.Now().UTC()
			if serr := c.save(); serr != nil {
				c.s.logf("container %s: saving record: %v", c.rec.Name, serr)
			}
		}
	}()
	p := c.s.paths
	stdout, stderr, err := logs.MakeFIFOs(p.FIFODir(c.rec.ID))
	if err != nil {
		return err
	}
	fault.Point(op + ".after-fifos")
	if c.logFile == nil {
		opts, err := logs.ParseOptions(c.rec.Config.Logging.Options)
		if err != nil {
			return fmt.Errorf("logging options: %w", err)
		}
		f, err := logs.OpenFile(logs.LogPath(p.ContainerDir(c.rec.ID), c.rec.ID), opts)
		if err != nil {
			return err
		}
		c.logFile = f
	}
	spec := c.rec.Spec
	spec.Stdio = runtime.Stdio{StdoutPath: stdout, StderrPath: stderr}
	// tty: a pseudo-terminal whose master the supervisor holds;
	// stdin_open: a FIFO that never reaches end-of-file. Either keeps a
	// shell waiting for input, as with docker.
	spec.Terminal = c.rec.Config.Tty
	if c.rec.Config.StdinOpen && !c.rec.Config.Tty {
		in := filepath.Join(p.FIFODir(c.rec.ID), "stdin.fifo")
		if err := unix.Mkfifo(in, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		spec.Stdio.StdinPath = in
	}
	if c.runStdinR != nil {
		spec.Stdio.Stdin = c.runStdinR
		defer func() { c.runStdinR.Close(); c.runStdinR = nil }() // the process holds its own copy
	}
	spec.CgroupParent = p.CgroupParent()
	// A previous run may have left libcontainer state, whole or not (a
	// supervisor killed inside Create or Start leaves a state directory
	// without state.json), processes and cgroups.
	if err := c.s.engine.Purge(p.RuntimeRoot(), p.CgroupParent(), c.rec.ID); err != nil {
		return fmt.Errorf("cleaning up an earlier run: %w", err)
	}
	ctr, warnings, err := c.s.engine.Create(p.RuntimeRoot(), spec)
	if err != nil {
		return err
	}
	fault.Point(op + ".after-runtime-create")
	for _, w := range warnings {
		c.s.logf("container %s: %s", c.rec.Name, w)
	}
	exited := make(chan struct{})
	runExited := make(chan struct{}) // the process is gone: capture drains and stops
	c.startCapture(stdout, stderr, runExited)
	if err := ctr.Start(); err != nil {
		close(runExited)
		_ = ctr.Destroy()
		return err
	}
	fault.Point(op + ".after-run")
	c.ctr = ctr
	c.exited = exited
	if console := ctr.Console(); console != nil {
		c.captureConsole(console)
	}
	st, _ := ctr.State()
	c.rec.State = State{
		Status:       StatusRunning,
		Pid:          st.Pid,
		StartedAt:    time.Now().UTC(),
		RestartCount: c.rec.State.RestartCount,
		Health:       c.initialHealth(),
	}
	if err := c.save(); err != nil {
		c.s.logf("container %s: saving record: %v", c.rec.Name, err)
	}
	fault.Point(op + ".after-record")
	c.s.emit(Event{Action: "start", Container: c.rec.Name, Service: c.rec.Service, ID: c.rec.ID})
	go c.wait(ctr, exited, runExited)
	c.s.startHealth(c)
	c.s.serving(c.rec, true)
	c.s.notify()
	return nil
}

// adopt takes over a container that a previous supervisor started: it is
// waited on by pidfd, so its exit is seen but its code stays unknown. What
// the kernel shows wins over the record: a container whose supervisor died
// between starting it and recording that is running; one that died meanwhile
// has exited, and leftovers of its run are removed.
func (c *container) adopt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.s.paths
	ctr, err := c.s.engine.Load(p.RuntimeRoot(), c.rec.ID)
	var st runtime.State
	running := false
	if err == nil {
		if st, err = ctr.State(); err == nil && (st.Status == runtime.StatusRunning || st.Status == runtime.StatusPaused) {
			running = true
		}
	}
	if !running {
		// A run that never got going (a supervisor killed inside Create or
		// Start) leaves state without a process: it must not block the next.
		if err := c.s.engine.Purge(p.RuntimeRoot(), p.CgroupParent(), c.rec.ID); err != nil {
			c.s.fail(c, "adopt", err)
		}
		switch c.rec.State.Status {
		case StatusRunning, StatusPaused:
			// It ended while nobody was its parent.
			c.rec.State.Status = StatusExited
			c.rec.State.ExitUnknown = true
			c.rec.State.ExitCode = -1
			c.rec.State.Pid = 0
			c.rec.State.Health = ""
			c.rec.State.FinishedAt = time.Now().UTC()
			// A restart policy holds across supervisors, as across daemon
			// restarts for docker.
			c.maybeRestart(time.Since(c.rec.State.StartedAt))
			_ = c.save()
			c.s.afterExit(c)
		case StatusRestarting:
			// The exit was counted when the restart was scheduled; the
			// supervisor died before it happened. Restart without counting
			// it again.
			c.rec.State.Pid = 0
			c.scheduleRestart(backoffStart)
			_ = c.save()
		}
		if c.rec.AutoRemove {
			go c.s.autoRemove(c) // a run --rm that ended meanwhile
		}
		return
	}
	if c.rec.State.Status != StatusRunning && c.rec.State.Status != StatusPaused {
		// Started, but its supervisor died before the record said so.
		c.rec.State.Status = StatusRunning
		if st.Status == runtime.StatusPaused {
			c.rec.State.Status = StatusPaused
		}
		c.rec.State.Pid = st.Pid
		c.rec.State.Error = ""
		c.rec.State.StartedAt = time.Now().UTC()
		c.rec.State.Health = c.initialHealth()
		_ = c.save()
	}
	stdout, stderr, err := logs.MakeFIFOs(p.FIFODir(c.rec.ID))
	if err == nil && c.logFile == nil {
		opts, _ := logs.ParseOptions(c.rec.Config.Logging.Options)
		c.logFile, err = logs.OpenFile(logs.LogPath(p.ContainerDir(c.rec.ID), c.rec.ID), opts)
	}
	runExited := make(chan struct{})
	if err == nil {
		c.startCapture(stdout, stderr, runExited)
	} else {
		c.s.logf("container %s: logs not captured: %v", c.rec.Name, err)
	}
	c.ctr = ctr
	c.exited = make(chan struct{})
	go c.wait(ctr, c.exited, runExited)
	c.s.startHealth(c)
}

// startFailureCode is docker's exit code for a container that could not be
// started: the runtime's for a command that is missing or not executable,
// 128 for anything else.
func startFailureCode(err error) int {
	if code := runtime.StartExitCode(err); code != 0 {
		return code
	}
	return 128
}

// captureConsole copies a tty container's output into its log, as
// stdout, until the terminal closes with the container.
func (c *container) captureConsole(console *os.File) {
	log, name := c.output(), c.rec.Name
	c.capture.Add(1)
	go func() {
		defer c.capture.Done()
		if err := logs.CaptureTerminal(console, log); err != nil {
			c.s.logf("container %s: terminal: %v", name, err)
		}
	}()
}

// startCapture drains the container's FIFOs into its log; c.mu is held.
func (c *container) startCapture(stdout, stderr string, runExited chan struct{}) {
	ctx, log, name := c.s.ctx, c.output(), c.rec.Name
	for _, s := range []struct{ path, stream string }{{stdout, "stdout"}, {stderr, "stderr"}} {
		c.capture.Add(1)
		go func() {
			defer c.capture.Done()
			if err := logs.Capture(ctx, s.path, s.stream, log, runExited); err != nil && !errors.Is(err, context.Canceled) {
				c.s.logf("container %s: %s: %v", name, s.stream, err)
			}
		}()
	}
}

// wait records the end of a run and applies the restart policy.
func (c *container) wait(ctr *runtime.Container, exited, runExited chan struct{}) {
	st, err := ctr.Wait(c.s.ctx)
	if err != nil && c.s.ctx.Err() != nil {
		return // the supervisor is going away; the container stays
	}
	close(runExited)
	c.capture.Wait()
	fault.Point("exit.before-record")
	if derr := ctr.Destroy(); derr != nil {
		c.s.fail(c, "cleanup", derr)
	}

	c.mu.Lock()
	c.ctr = nil
	s := &c.rec.State
	ran := time.Since(s.StartedAt)
	s.Status = StatusExited
	s.Pid = 0
	s.FinishedAt = time.Now().UTC()
	s.ExitCode = st.Code
	s.ExitUnknown = st.Unknown
	s.OOMKilled = st.OOMKilled
	s.Health = ""
	if err != nil {
		s.Error = err.Error()
	}
	// The exit and the restart it causes are saved at once: a supervisor
	// killed in between must not lose the restart.
	c.maybeRestart(ran)
	if err := c.save(); err != nil {
		c.s.fail(c, "saving record", err)
	}
	c.s.serving(c.rec, false)
	ev := Event{Action: "die", Container: c.rec.Name, Service: c.rec.Service, ID: c.rec.ID, ExitCode: st.Code}
	close(exited)
	c.mu.Unlock()
	fault.Point("exit.after-record")
	c.s.emit(ev)
	c.s.afterExit(c)
	if c.rec.AutoRemove {
		c.s.autoRemove(c)
	}
}

// maybeRestart applies the restart policy to a run that just ended after
// ran: it counts the restart and schedules a start after the backoff. The
// caller saves the record; c.mu is held.
func (c *container) maybeRestart(ran time.Duration) {
	policy, err := parseRestart(c.rec.Config.Restart)
	if err != nil {
		// The loader refuses such a policy; a record written by an older
		// berth may still hold one. Say so rather than restart silently never.
		c.s.logf("container %s: %v; not restarting", c.rec.Name, err)
	}
	if !policy.shouldRestart(c.rec.State) {
		return
	}
	c.backoff = nextBackoff(c.backoff, ran)
	c.rec.State.Status = StatusRestarting
	c.rec.State.RestartCount++
	c.scheduleRestart(c.backoff)
}

// scheduleRestart starts a restarting container after delay, unless it is
// stopped meanwhile; c.mu is held.
func (c *container) scheduleRestart(delay time.Duration) {
	c.restartT = time.AfterFunc(delay, func() {
		c.mu.Lock()
		stillWanted := c.rec.State.Status == StatusRestarting
		c.restartT = nil
		c.mu.Unlock()
		if !stillWanted {
			return
		}
		fault.Point("restart.before-start")
		if err := c.start("restart"); err != nil {
			c.s.fail(c, "restart", err)
			return
		}
		c.s.emit(Event{Action: "restart", Container: c.rec.Name, Service: c.rec.Service, ID: c.rec.ID})
	})
}

// stop ends the container as `stop` does: its stop signal, the grace
// period, then SIGKILL. It is not restarted afterwards.
func (c *container) stop(ctx context.Context, grace *time.Duration) error {
	c.mu.Lock()
	c.rec.State.StoppedByUser = true
	if c.restartT != nil {
		c.restartT.Stop()
		c.restartT = nil
	}
	if c.rec.State.Status == StatusRestarting {
		c.rec.State.Status = StatusExited
	}
	_ = c.save()
	ctr, exited := c.ctr, c.exited
	sigName := c.rec.StopSignal
	g := c.rec.Config.StopGracePeriod
	c.mu.Unlock()
	if ctr == nil {
		return nil
	}
	if grace != nil {
		g = *grace
	}
	sig, err := ParseSignal(sigName)
	if err != nil {
		return err
	}
	c.s.emit(Event{Action: "stop", Container: c.rec.Name, Service: c.rec.Service, ID: c.rec.ID})
	if st, err := ctr.State(); err == nil && st.Status == runtime.StatusPaused {
		_ = ctr.Resume() // a frozen process cannot handle its signal
	}
	fault.Point("stop.before-signal")
	if err := ctr.Stop(ctx, sig, g); err != nil {
		return err
	}
	// The init is gone; recording its end (logs drained, state destroyed)
	// is bounded too, so that no caller holds the operation lock for ever.
	t := time.NewTimer(exitRecordWait)
	defer t.Stop()
	select {
	case <-exited:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("container %s: its exit was not recorded within %v", c.rec.Name, exitRecordWait)
	}
	return nil
}

// exitRecordWait bounds how long stop waits, once the init is gone, for
// the container's exit to be recorded.
const exitRecordWait = 30 * time.Second

// kill sends sig to the container's init. As with docker, a fatal signal
// (SIGKILL or the stop signal) suspends the restart policy until the next
// start; another (SIGHUP, SIGUSR1, ...) leaves it in force.
func (c *container) kill(sig syscall.Signal) error {
	c.mu.Lock()
	stopSig, _ := ParseSignal(c.rec.StopSignal)
	if sig == syscall.SIGKILL || sig == stopSig {
		c.rec.State.StoppedByUser = true
		_ = c.save()
	}
	ctr := c.ctr
	c.mu.Unlock()
	if ctr == nil {
		return fmt.Errorf("container %s is not running", c.rec.Name)
	}
	return ctr.Signal(sig)
}

// remove deletes everything of the container: its libcontainer state and
// cgroups, its rootfs, its FIFOs, its network, its record and its logs, and
// releases its volumes (removing its anonymous ones with removeAnon). It must
// be stopped first. The record says "removing" before anything goes, so a
// supervisor killed half way finishes the removal when it adopts.
func (c *container) remove(removeAnon bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctr != nil {
		return fmt.Errorf("container %s is running: stop it first", c.rec.Name)
	}
	if c.restartT != nil {
		c.restartT.Stop()
		c.restartT = nil
	}
	var errs []error
	if c.logFile != nil {
		errs = append(errs, c.logFile.Close())
		c.logFile = nil
	}
	c.rec.State.Status = StatusRemoving
	c.rec.State.RemoveVolumes = removeAnon
	if err := c.save(); err != nil {
		return err
	}
	fault.Point("remove.intent")
	errs = append(errs, c.s.purge(c.rec, removeAnon, "remove"))
	c.rec.State.Status = StatusDead
	c.s.emit(Event{Action: "destroy", Container: c.rec.Name, Service: c.rec.Service, ID: c.rec.ID})
	return errors.Join(errs...)
}

func (c *container) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctr != nil
}

// pause freezes (or thaws) the container's processes.
func (c *container) pause(freeze bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctr == nil {
		return fmt.Errorf("container %s is not running", c.rec.Name)
	}
	if freeze {
		if err := c.ctr.Pause(); err != nil {
			return err
		}
		c.rec.State.Status = StatusPaused
	} else {
		if err := c.ctr.Resume(); err != nil {
			return err
		}
		c.rec.State.Status = StatusRunning
	}
	return c.save()
}
