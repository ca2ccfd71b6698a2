// Package reaper is a minimal PID 1 for containers (Docker's `init: true`):
// it runs one command, forwards signals to it, reaps every zombie that the
// kernel reparents to it, and exits with the command's status. It has no
// cgo and no libcontainer dependency, so it also builds into a tiny static
// binary for tests.
package reaper

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Run runs args[0] with args[1:] (a leading "--" is skipped) and returns
// the exit code to exit with: the command's code, or 128+signal.
func Run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "berth-init: no command")
		return 127
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-init: %v\n", err)
		return 127
	}

	// Subscribe before starting the child so that no signal is lost.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)

	attr := &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			// Give the command the terminal's foreground if there is one,
			// as a shell would, so that ^C reaches it.
			Setpgid:    true,
			Foreground: term.IsTerminal(0),
			Ctty:       0,
		},
	}
	pid, err := syscall.ForkExec(path, args, attr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-init: exec %s: %v\n", args[0], err)
		return 126
	}

	// A full channel drops signals and SIGCHLDs coalesce: reap after every
	// signal, and now and then regardless.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case sig := <-sigs:
			switch s := sig.(syscall.Signal); s {
			case unix.SIGCHLD:
			case unix.SIGURG:
				// The Go runtime's preemption signal: not for the child.
			default:
				_ = unix.Kill(pid, s)
			}
		case <-tick.C:
		}
		if code, done := reapAll(pid); done {
			return code
		}
	}
}

// reapAll reaps every exited child. It reports the exit code of pid once
// pid has been reaped.
func reapAll(pid int) (int, bool) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || got <= 0 {
			return 0, false
		}
		if got != pid {
			continue
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus(), true
		case ws.Signaled():
			return 128 + int(ws.Signal()), true
		}
	}
}
