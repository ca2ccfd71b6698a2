package dirfd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLastKeepsDirAndError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var d Last
	defer d.Close()
	var st unix.Stat_t
	if err := d.Lstat(dir, "f", &st); err != nil || st.Size != 1 {
		t.Fatalf("Lstat f: %v, size %d", err, st.Size)
	}
	fd, _ := d.Open(dir)
	if fd2, _ := d.Open(dir); fd2 != fd {
		t.Errorf("the same directory opened again: %d, then %d", fd, fd2)
	}
	if afd, name, ok := d.At(filepath.Join(dir, "f")); !ok || afd != fd || name != "f" {
		t.Errorf("At(dir/f) = %d, %q, %v; want %d, \"f\", true", afd, name, ok, fd)
	}
	if err := d.Lstat(dir, "missing", &st); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Lstat missing: %v", err)
	}
	gone := filepath.Join(dir, "gone")
	if err := d.Lstat(gone, "f", &st); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Lstat in a missing directory: %v", err)
	}
	if _, err := d.Open(gone); !errors.Is(err, unix.ENOENT) {
		t.Errorf("the missing directory's error is not kept: %v", err)
	}
	if _, _, ok := d.At(filepath.Join(gone, "f")); ok {
		t.Error("At in a missing directory is ok")
	}
	for _, c := range []struct{ p, dir, name string }{{"/a/b", "/a", "b"}, {"/a/b/c", "/a/b", "c"}} {
		if dir, name, ok := Split(c.p); !ok || dir != c.dir || name != c.name {
			t.Errorf("Split(%q) = %q, %q, %v", c.p, dir, name, ok)
		}
	}
	for _, p := range []string{"/", "/a", "a", "/a/"} {
		if _, _, ok := Split(p); ok {
			t.Errorf("Split(%q) ok", p)
		}
	}
}
