package supervisor

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAliveWhenBusy: a supervisor that accepts no connection for the moment
// (busy, out of descriptors) is alive as long as its socket listens.
func TestAliveWhenBusy(t *testing.T) {
	dir, err := os.MkdirTemp("", "berth-alive-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	paths := Paths{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run")}
	if err := os.MkdirAll(paths.ProjectRunDir("p"), 0o700); err != nil {
		t.Fatal(err)
	}
	c := newClient(paths, "p")
	ctx := context.Background()
	if c.alive(ctx) {
		t.Error("alive without a socket")
	}
	ln, err := net.Listen("unix", paths.Socket("p"))
	if err != nil {
		t.Fatal(err)
	}
	// Nothing accepts: the kernel queues the connections.
	for i := range 3 {
		if !c.alive(ctx) {
			t.Errorf("probe %d: a listening supervisor that does not accept taken for dead", i)
		}
	}
	ln.Close()
	if c.alive(ctx) {
		t.Error("alive after the socket closed")
	}
}

func TestLockHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "supervisor.lock")
	if lockHeld(path) {
		t.Error("held without a lock file")
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if lockHeld(path) {
		t.Error("held while nobody locks it")
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if !lockHeld(path) {
		t.Error("not held while locked")
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if lockHeld(path) {
		t.Error("held after unlock")
	}
}

// TestLockFileRemovedByHolder: the supervisor that exits removes the lock
// file while it still holds it; the one waiting must end up holding the
// file on the path, not the removed one.
func TestLockFileRemovedByHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p", "supervisor.lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	old, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(old.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	type result struct {
		f   *os.File
		err error
	}
	got := make(chan result, 1)
	go func() {
		f, err := lockFile(context.Background(), path, func() bool { return false })
		got <- result{f, err}
	}()
	// Let the waiter open the old file first (it polls every 50 ms); the
	// outcome must be the same if it does not.
	time.Sleep(100 * time.Millisecond)
	// The holder's exit: the file and its directory go, then the lock.
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	old.Close()
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.f.Close()
	held, err := r.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	onPath, err := os.Stat(path)
	if err != nil || !os.SameFile(held, onPath) {
		t.Fatalf("the lock held is not the file on the path (%v)", err)
	}
	if !lockHeld(path) {
		t.Error("the lock on the path is free")
	}
}

func TestLockFileGivesUpWhenAnotherServes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "supervisor.lock")
	holder, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := lockFile(context.Background(), path, func() bool { return true }); err != ErrAlreadyRunning {
		t.Errorf("lockFile while another serves: %v, want ErrAlreadyRunning", err)
	}
}
