package testimage

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func TestBusyboxContents(t *testing.T) {
	img, err := Busybox(WithFile("etc/motd", 0o644, "hi\n"), WithCmd("httpd", "-f"))
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	if len(layers) != 2 {
		t.Fatalf("%d layers, want 2 (base and WithFile)", len(layers))
	}
	files := map[string]*tar.Header{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "etc/passwd" {
			b, _ := io.ReadAll(tr)
			if !strings.Contains(string(b), "app:x:1000:1000:") || !strings.Contains(string(b), "nobody:x:65534") {
				t.Errorf("etc/passwd = %q", b)
			}
		}
		files[strings.TrimSuffix(hdr.Name, "/")] = hdr
	}
	for _, name := range []string{"bin/busybox", "bin/sh", "bin/ls", "bin/wget", "bin/nc", "bin/httpd", "etc/group", "etc/motd", "tmp"} {
		if files[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	if h := files["bin/sh"]; h != nil && (h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox") {
		t.Errorf("bin/sh: type %c -> %q", h.Typeflag, h.Linkname)
	}
	if h := files["tmp"]; h != nil && h.Mode&0o1777 != 0o1777 {
		t.Errorf("tmp mode %o", h.Mode)
	}
	cf, _ := img.ConfigFile()
	if strings.Join(cf.Config.Cmd, " ") != "httpd -f" || cf.Config.Env[0] != DefaultPath {
		t.Errorf("config %+v", cf.Config)
	}

	// Reproducible: the same options give the same image.
	again, _ := Busybox(WithFile("etc/motd", 0o644, "hi\n"), WithCmd("httpd", "-f"))
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("digests differ: %s %s", d1, d2)
	}
}

func TestArchivesAndRegistry(t *testing.T) {
	img, err := Busybox()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, write := range []func(string, string, v1.Image) error{WriteDockerArchive, WriteOCIArchive} {
		p := filepath.Join(dir, "a.tar")
		if err := write(p, "busybox:test", img); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() < 1<<20 {
			t.Fatalf("archive: %v %v", fi, err)
		}
	}
	reg := StartRegistry(t, WithBasicAuth("u", "p"))
	if _, err := reg.Push(context.Background(), "busybox:test", img); err == nil {
		t.Fatal("push without credentials succeeded")
	}
}
