package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLockFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "supervisor.lock")
	first, err := lockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !lockHeld(path) {
		t.Error("lockHeld: false while held")
	}
	// A second supervisor gives up at once.
	if _, err := lockFile(path); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second lock: %v, want ErrAlreadyRunning", err)
	}
	// An exiting supervisor unlinks its lock file while it holds it; the
	// next one locks a new file, not the unlinked one.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	second, err := lockFile(path)
	if err != nil {
		t.Fatalf("lock after the holder unlinked the file: %v", err)
	}
	first.Unlock()
	second.Unlock()
	if lockHeld(path) {
		t.Error("lockHeld: true once released")
	}
	// Errors other than "held" are reported as they are.
	_, err = lockFile(filepath.Join(dir, "missing", "supervisor.lock"))
	if err == nil || errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("lock in a missing directory: %v, want the open error", err)
	}
}

func TestIsContainerID(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{newID(), true},
		{"lock", false},
		{".creating-p." + newID(), false},
		{newID()[:63] + "g", false},
	} {
		if got := isContainerID(tc.name); got != tc.want {
			t.Errorf("isContainerID(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
