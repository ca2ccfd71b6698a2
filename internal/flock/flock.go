// Package flock takes advisory locks on files with flock(2). A lock belongs
// to the open file, so it excludes other goroutines of the same process as
// well as other processes, and it is dropped when the process dies.
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned by TryLock when another open file holds the lock.
var ErrLocked = errors.New("locked by another process")

// Lock is a held lock; Unlock releases it.
type Lock struct{ f *os.File }

// Unlock releases the lock by closing the file.
func (l *Lock) Unlock() error { return l.f.Close() }

// Exclusive takes an exclusive lock on path, creating the file if needed.
// See wait for how it waits.
func Exclusive(ctx context.Context, path string) (*Lock, error) {
	return lock(ctx, path, unix.LOCK_EX)
}

// Shared takes a shared lock on path, creating the file if needed.
func Shared(ctx context.Context, path string) (*Lock, error) {
	return lock(ctx, path, unix.LOCK_SH)
}

// TryLock takes an exclusive lock on path or fails at once with an error
// wrapping ErrLocked if it is held; any other failure is returned as is.
func TryLock(path string) (*Lock, error) {
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f}, nil
}

func open(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
}

// lock waits for the lock. A context that can never be done (Background)
// waits in the kernel, woken as soon as the holder lets go; a cancellable
// one polls with a backoff up to 10ms, since a blocked flock cannot be
// interrupted from another goroutine.
func lock(ctx context.Context, path string, how int) (*Lock, error) {
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	if ctx.Done() == nil {
		err = flock(f, how)
	} else {
		err = poll(ctx, f, how)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f}, nil
}

func poll(ctx context.Context, f *os.File, how int) error {
	wait := 100 * time.Microsecond
	for {
		err := flock(f, how|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Millisecond)
	}
}

// flock is flock(2) retried when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// TryLockFile is TryLock for a lock file that its holder unlinks before it
// lets go (a supervisor that exits removes its lock file while it holds
// it): a lock taken on the unlinked file would lock nothing, so the lock is
// taken again on the file now at path until both are the same file.
func TryLockFile(path string) (*Lock, error) {
	for {
		l, err := TryLock(path)
		if err != nil {
			return nil, err
		}
		if sameFile(l.f, path) {
			return l, nil
		}
		l.Unlock()
	}
}

// Held reports whether some open file holds a lock on path. A missing file
// is not held.
func Held(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	return errors.Is(err, unix.EWOULDBLOCK)
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}
