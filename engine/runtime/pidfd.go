package runtime

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// waitExit returns once the process pid has exited (a child stays a zombie
// until it is reaped), or with an error when it cannot tell: pid is gone
// or unknown, or ctx ended. It waits in the runtime's poller on a pidfd
// rather than in a blocking waitid or a polling loop: a supervisor waits on
// every running container for the container's whole life, and a blocked
// waitid holds an OS thread each (with its stacks), a poll loop wakes the
// process up for nothing.
func waitExit(ctx context.Context, pid int) error {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return err
	}
	return pollExit(ctx, fd)
}

// pollExit waits until the pidfd fd (opened non-blocking) is readable:
// its process has exited. It closes fd.
func pollExit(ctx context.Context, fd int) error {
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	// A read blocked in the poller is woken by a deadline in the past.
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	err = rc.Read(func(fd uintptr) bool {
		n, _ := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		return n > 0
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
