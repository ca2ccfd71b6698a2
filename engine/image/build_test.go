package image

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestBuiltLayersPinned: a layer the builder adds moves into the store;
// gc collects it unless a pin names it, and `image prune -a` drops pins.
func TestBuiltLayersPinned(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l := Layer{
		DiffID:    fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("diff"))),
		Digest:    fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("blob"))),
		MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip",
		Size:      4,
	}
	add := func() {
		t.Helper()
		dir, err := os.MkdirTemp(s.path("tmp"), "upper-")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		blob := filepath.Join(t.TempDir(), "blob")
		if err := os.WriteFile(blob, []byte("blob"), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := s.AddLayerDir(context.Background(), dir, blob, l, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got != l {
			t.Fatalf("stored %v, want %v", got, l)
		}
		if data, err := os.ReadFile(filepath.Join(s.LayerDir(l.DiffID), "f")); err != nil || string(data) != "x" {
			t.Fatalf("layer content: %q %v", data, err)
		}
	}
	prune := func(all bool) {
		t.Helper()
		if _, _, err := s.Prune(all); err != nil {
			t.Fatal(err)
		}
	}
	add()
	prune(false)
	if s.HasLayer(l.DiffID) {
		t.Fatal("gc kept a layer nothing names")
	}
	add()
	if err := s.Pin("k1", []Layer{l}); err != nil {
		t.Fatal(err)
	}
	prune(false)
	if !s.HasLayer(l.DiffID) || !s.hasBlob(l.Digest) {
		t.Fatal("gc removed a pinned layer or its blob")
	}
	prune(true)
	if s.HasLayer(l.DiffID) || s.hasBlob(l.Digest) {
		t.Fatal("image prune -a kept the build cache's layer")
	}
}
