package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
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
		dir := upperDir(t, s)
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

// TestDirBlobLayer: a built layer kept as its directory alone serves the
// tar of that directory as its blob: an image naming it saves with that
// tar, loads back to the same image, and pushes gzipped under a manifest
// that names the gzip blob.
func TestDirBlobLayer(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := upperDir(t, s)
	for name, data := range map[string]string{"a/f": "one", "b": "two", "a/g": ""} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "b"), filepath.Join(dir, "a/link")); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	lt, _, err := WriteLayerTar(dir, &want)
	if err != nil {
		t.Fatal(err)
	}
	l := Layer{DiffID: lt.DiffID, Digest: lt.DiffID, MediaType: UncompressedLayer, Size: lt.Size}
	got, err := s.AddLayerDir(ctx, dir, "", l, lt.Content)
	if err != nil || got != l {
		t.Fatalf("stored %v %v, want %v", got, err, l)
	}
	if stored, ok, err := s.LayerBlob(l.DiffID); err != nil || !ok || stored != l {
		t.Fatalf("LayerBlob: %v %v %v", stored, ok, err)
	}
	diffID, _ := v1.NewHash(l.DiffID)
	cfg := &v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}}}
	rec, err := s.Commit(ctx, cfg, []Layer{l}, []string{"example/dirblob:1"})
	if err != nil {
		t.Fatal(err)
	}

	// push: the layer goes gzipped; its content is the same tar.
	img, cleanup, err := s.compressedImage(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != types.DockerLayer || m.Layers[0].Digest.String() == l.Digest {
		t.Fatalf("pushed manifest layers %v", m.Layers)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(data, want.Bytes()) {
		t.Errorf("pushed layer uncompresses to %d bytes (%v), want the layer's tar", len(data), err)
	}
	if id, err := img.ConfigName(); err != nil || id.String() != rec.ID {
		t.Errorf("pushed config %v %v, want %s", id, err, rec.ID)
	}
	cleanup()
	if left, _ := filepath.Glob(s.path("tmp", "push-*")); len(left) != 0 {
		t.Errorf("push left %v", left)
	}

	// save: the layer is the directory's tar, byte for byte.
	var archive bytes.Buffer
	if err := s.Save(ctx, &archive, "example/dirblob:1"); err != nil {
		t.Fatal(err)
	}
	found := false
	tr := tar.NewReader(bytes.NewReader(archive.Bytes()))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if h.Size == lt.Size && bytes.Equal(data, want.Bytes()) {
			found = true
		}
	}
	if !found {
		t.Error("the saved archive lacks the layer's tar")
	}
	if _, err := s.Remove("example/dirblob:1", false); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "saved.tar")
	if err := os.WriteFile(path, archive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := s.Load(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].ID != rec.ID {
		t.Errorf("loaded %v, saved %s", loaded, rec.ID)
	}
}

// upperDir makes a directory in s's tmp, where a build step's upper
// directory is before AddLayerDir or AddBuiltLayer moves it into the store.
func upperDir(t *testing.T, s *Store) string {
	t.Helper()
	dir, err := os.MkdirTemp(s.path("tmp"), "upper-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
