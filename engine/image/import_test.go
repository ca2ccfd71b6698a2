package image_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/internal/testimage"
)

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestImportOnePass: a gzip tarball is stored as its own blob, a plain one
// gzipped at BestSpeed (as go-containerregistry did), each with the diff ID
// of its tar; a failed import leaves nothing behind.
func TestImportOnePass(t *testing.T) {
	ctx := context.Background()
	rootfs, err := testimage.BusyboxTar(testimage.WithFile("etc/motd", 0o644, "hi\n"))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(rootfs)
	zw.Close()
	dir := t.TempDir()
	plainPath, gzPath := filepath.Join(dir, "rootfs.tar"), filepath.Join(dir, "rootfs.tar.gz")
	if err := os.WriteFile(plainPath, rootfs, 0o644); err != nil {
		t.Fatal(err)
	}
	// A different gzip stream of the same tar: another blob, one layer.
	var gz9 bytes.Buffer
	zw, _ = gzip.NewWriterLevel(&gz9, gzip.BestCompression)
	zw.Write(rootfs)
	zw.Close()
	if err := os.WriteFile(gzPath, gz9.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	s := newStore(t)
	var mu sync.Mutex
	var events []image.Progress
	progress := func(p image.Progress) { mu.Lock(); events = append(events, p); mu.Unlock() }
	for _, tc := range []struct {
		path, ref string
		blob      []byte
	}{
		{gzPath, "gz:1", gz9.Bytes()},
		{plainPath, "plain:1", gz.Bytes()},
	} {
		events = nil
		img, err := s.Import(ctx, tc.path, tc.ref, image.ImportOptions{Progress: progress})
		if err != nil {
			t.Fatal(err)
		}
		want := image.Layer{DiffID: sha(rootfs), Digest: sha(tc.blob), MediaType: string(types.DockerLayer), Size: int64(len(tc.blob))}
		if len(img.Layers) != 1 || img.Layers[0] != want {
			t.Errorf("%s: layers %+v, want %+v", tc.ref, img.Layers, want)
		}
		if img.Size == 0 {
			t.Errorf("%s: size 0", tc.ref)
		}
		if len(events) == 0 || events[len(events)-1].Status != image.StatusLayerComplete || events[0].Status != image.StatusLoadingLayer {
			t.Errorf("%s: progress %+v", tc.ref, events)
		}
		// The blob the manifest names is in the store, as received or made.
		v1img, err := s.V1Image(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		ls, err := v1img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := ls[0].Compressed()
		if err != nil {
			t.Fatalf("%s: %v", tc.ref, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, tc.blob) {
			t.Errorf("%s: stored blob differs (%v)", tc.ref, err)
		}
		if _, err := os.Stat(s.LayerDir(want.DiffID) + "/etc/motd"); err != nil {
			t.Errorf("%s: layer not unpacked: %v", tc.ref, err)
		}
	}

	// From a stream, as standard input: the same layer, the history says "-".
	img, err := s.ImportReader(ctx, io.MultiReader(bytes.NewReader(gz9.Bytes())), 0, "-", "stdin:1", image.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Layers[0].Digest != sha(gz9.Bytes()) || img.Layers[0].DiffID != sha(rootfs) {
		t.Errorf("stdin: layers %+v", img.Layers)
	}
	v1img, err := s.V1Image("stdin:1")
	if err != nil {
		t.Fatal(err)
	}
	if cf, err := v1img.ConfigFile(); err != nil || len(cf.History) != 1 || cf.History[0].Comment != "Imported from -" {
		t.Errorf("stdin: history %+v (%v)", cf.History, err)
	}

	// Failures: a truncated gzip, and a plain file that is no tar.
	bad := filepath.Join(dir, "bad")
	for name, content := range map[string][]byte{"truncated gzip": gz.Bytes()[:gz.Len()/2], "no tar": bytes.Repeat([]byte("not a tar\n"), 1000)} {
		blobsBefore := countEntries(t, filepath.Join(s.Root(), "blobs", "sha256"))
		layersBefore := countEntries(t, filepath.Join(s.Root(), "layers"))
		if err := os.WriteFile(bad, content, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Import(ctx, bad, "bad:1", image.ImportOptions{}); err == nil {
			t.Errorf("%s: import succeeded", name)
		}
		if n := countEntries(t, filepath.Join(s.Root(), "tmp")); n != 0 {
			t.Errorf("%s: %d entries left in tmp", name, n)
		}
		if n := countEntries(t, filepath.Join(s.Root(), "blobs", "sha256")); n != blobsBefore {
			t.Errorf("%s: %d blobs, want %d", name, n, blobsBefore)
		}
		if n := countEntries(t, filepath.Join(s.Root(), "layers")); n != layersBefore {
			t.Errorf("%s: %d layers, want %d", name, n, layersBefore)
		}
		if _, err := s.Image("bad:1"); err == nil {
			t.Errorf("%s: tagged", name)
		}
	}
}

func countEntries(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
