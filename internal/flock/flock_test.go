package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestExclusion(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "lock")
	for _, tc := range []struct {
		name      string
		hold      func() (*Lock, error)
		tryShared bool
		wantHeld  bool
	}{
		{"exclusive excludes exclusive", func() (*Lock, error) { return Exclusive(ctx, p) }, false, true},
		{"shared excludes exclusive", func() (*Lock, error) { return Shared(ctx, p) }, false, true},
		{"shared admits shared", func() (*Lock, error) { return Shared(ctx, p) }, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held, err := tc.hold()
			if err != nil {
				t.Fatal(err)
			}
			defer held.Unlock()
			var l *Lock
			if tc.tryShared {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				l, err = Shared(cctx, p)
			} else {
				l, err = TryLock(p)
			}
			if tc.wantHeld {
				if !errors.Is(err, ErrLocked) {
					t.Fatalf("got %v, want ErrLocked", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l.Unlock()
		})
	}
}

func TestWait(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	held, err := TryLock(p)
	if err != nil {
		t.Fatal(err)
	}
	// A cancelled wait ends with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Exclusive(ctx, p); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// A waiter gets the lock once the holder lets go, both ways of waiting.
	for _, ctx := range []context.Context{context.Background(), t.Context()} {
		got := make(chan error, 1)
		go func() {
			l, err := Exclusive(ctx, p)
			if err == nil {
				l.Unlock()
			}
			got <- err
		}()
		held.Unlock()
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if held, err = TryLock(p); err != nil {
			t.Fatal(err)
		}
	}
	held.Unlock()
}

func TestTryLockFileHandOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	if Held(path) {
		t.Fatal("a missing file is held")
	}
	first, err := TryLockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !Held(path) {
		t.Error("Held: false while held")
	}
	if _, err := TryLockFile(path); !errors.Is(err, ErrLocked) {
		t.Errorf("second lock: %v, want ErrLocked", err)
	}
	// The holder unlinks the file before letting go: the next lock is on
	// a new file, not the unlinked one.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	second, err := TryLockFile(path)
	if err != nil {
		t.Fatalf("lock after the holder unlinked the file: %v", err)
	}
	first.Unlock()
	if !Held(path) {
		t.Error("the new file's lock went with the old file's")
	}
	second.Unlock()
	if Held(path) {
		t.Error("Held: true once released")
	}
}
