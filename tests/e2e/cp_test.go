package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

const cpProject = `
name: cp
services:
  app:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    volumes: ["data:/data"]
volumes:
  data:
`

// TestCp: files, directories, symlinks and tar streams both ways, into a
// volume, out of a stopped container, and paths that climb out through
// symlinks stay inside the container.
func TestCp(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", cpProject)
	e.MustRun("up", "-d")
	cat := func(p string) string {
		t.Helper()
		return e.Run("exec", "-T", "app", "cat", p).Stdout
	}

	e.WriteFile("host.txt", "from the host\n")
	e.WriteFile("dir/a.txt", "a\n")
	e.WriteFile("dir/sub/b.txt", "b\n")
	e.MustRun("cp", "host.txt", "app:/tmp/f.txt")
	if got := cat("/tmp/f.txt"); got != "from the host\n" {
		t.Errorf("file into the container: %q", got)
	}
	e.MustRun("cp", "dir", "app:/tmp/newdir")
	e.MustRun("cp", "dir", "app:/tmp")
	if cat("/tmp/newdir/sub/b.txt") != "b\n" || cat("/tmp/dir/a.txt") != "a\n" {
		t.Errorf("directory into the container: %q %q", cat("/tmp/newdir/sub/b.txt"), cat("/tmp/dir/a.txt"))
	}
	e.MustRun("cp", "host.txt", "app:/data/")
	if got := cat("/data/host.txt"); got != "from the host\n" {
		t.Errorf("file into a volume: %q", got)
	}
	if r := e.Run("exec", "-T", "app", "stat", "-c", "%u", "/tmp/f.txt"); strings.TrimSpace(r.Stdout) != "0" {
		t.Errorf("owner of a copied file: %q", r.Stdout)
	}

	// Out of the container: a file, a directory, a symlink kept and followed.
	e.MustRun("exec", "-T", "app", "sh", "-c", "mkdir -p /tmp/out/d && echo x > /tmp/out/d/x.txt && ln -s /etc/hostname /tmp/out/link")
	e.MustRun("cp", "app:/tmp/out", "out")
	if b, err := os.ReadFile(filepath.Join(e.Dir, "out/d/x.txt")); err != nil || string(b) != "x\n" {
		t.Errorf("directory out of the container: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(e.Dir, "out/link")); err != nil || l != "/etc/hostname" {
		t.Errorf("symlink out of the container: %q %v", l, err)
	}
	// SRC/. copies a directory's contents, both ways.
	e.MustRun("cp", "dir/.", "app:/tmp/newdir")
	e.MustRun("cp", "dir/.", "app:/tmp/contents")
	if cat("/tmp/newdir/a.txt") != "a\n" || cat("/tmp/contents/sub/b.txt") != "b\n" {
		t.Errorf("contents into the container: %q %q", cat("/tmp/newdir/a.txt"), cat("/tmp/contents/sub/b.txt"))
	}
	if err := os.MkdirAll(filepath.Join(e.Dir, "existing"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.MustRun("cp", "app:/tmp/out/.", "existing")
	if b, err := os.ReadFile(filepath.Join(e.Dir, "existing/d/x.txt")); err != nil || string(b) != "x\n" {
		t.Errorf("contents out of the container: %q %v", b, err)
	}
	e.MustRun("cp", "-L", "app:/tmp/out/link", "hostname.txt")
	if b, err := os.ReadFile(filepath.Join(e.Dir, "hostname.txt")); err != nil || len(bytes.TrimSpace(b)) == 0 {
		t.Errorf("followed symlink: %q %v", b, err)
	}

	// Tar streams both ways.
	r := e.MustRun("cp", "app:/tmp/out/d", "-")
	names := tarNames(t, r.Stdout)
	if !contains(names, "d/x.txt") {
		t.Errorf("tar out: %v", names)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "streamed.txt", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("in\n"))
	tw.Close()
	if r := e.RunInput(buf.String(), "cp", "-", "app:/tmp"); r.Code != 0 {
		t.Fatalf("tar in: %v", r.Stderr)
	}
	if got := cat("/tmp/streamed.txt"); got != "in\n" {
		t.Errorf("tar into the container: %q", got)
	}

	// A symlink climbing out of the rootfs resolves inside it.
	e.MustRun("exec", "-T", "app", "mkdir", "-p", e.Dir)
	e.MustRun("exec", "-T", "app", "ln", "-s", "../../../../../../../../../.."+e.Dir, "/tmp/up")
	e.MustRun("exec", "-T", "app", "ln", "-s", e.Dir, "/tmp/abs")
	e.MustRun("cp", "host.txt", "app:/tmp/up/escaped.txt")
	e.MustRun("cp", "host.txt", "app:/tmp/abs/escaped2.txt")
	for _, n := range []string{"escaped.txt", "escaped2.txt"} {
		if _, err := os.Stat(filepath.Join(e.Dir, n)); err == nil {
			t.Errorf("cp wrote %s on the host through a symlink", n)
		}
		if got := cat(e.Dir + "/" + n); got != "from the host\n" {
			t.Errorf("%s inside the container: %q", n, got)
		}
	}
	// A symlink into a volume leads into the volume, as in the container.
	e.MustRun("exec", "-T", "app", "ln", "-s", "/data", "/tmp/datalink")
	e.MustRun("cp", "host.txt", "app:/tmp/datalink/via-link.txt")
	if got := cat("/data/via-link.txt"); got != "from the host\n" {
		t.Errorf("through a symlink into a volume: %q", got)
	}
	e.WriteFile("secret.txt", "host secret\n")
	if r := e.Run("cp", "app:/tmp/abs/secret.txt", "stolen.txt"); r.Code == 0 {
		b, _ := os.ReadFile(filepath.Join(e.Dir, "stolen.txt"))
		t.Errorf("cp read a host file through a symlink: %q", b)
	}

	// A stopped container.
	e.MustRun("stop", "-t", "1")
	e.MustRun("cp", "app:/tmp/f.txt", "back.txt")
	if b, err := os.ReadFile(filepath.Join(e.Dir, "back.txt")); err != nil || string(b) != "from the host\n" {
		t.Errorf("out of a stopped container: %q %v", b, err)
	}
	e.MustRun("down", "-v")
}

func tarNames(t *testing.T, s string) []string {
	t.Helper()
	tr := tar.NewReader(strings.NewReader(s))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		names = append(names, h.Name)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestCpAndExecTogether: a copy freezes the container while an exec may be
// starting in it; neither waits for the other for ever (an exec's init
// that joined the frozen cgroup used to hold libcontainer's lock that the
// thaw needed). An exec in a paused container is refused, as docker's.
func TestCpAndExecTogether(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", cpProject)
	e.WriteFile("f.txt", "copied\n")
	e.MustRun("up", "-d")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 40; i++ {
			e.Run("cp", "f.txt", "app:/tmp/f.txt")
		}
	}()
	for i := 0; i < 40; i++ {
		if r := e.Run("exec", "-T", "app", "true"); r.Code != 0 {
			t.Errorf("exec during copies: exit %d, %s", r.Code, r.Stderr)
			break
		}
	}
	<-done
	if out := e.MustRun("exec", "-T", "app", "cat", "/tmp/f.txt").Stdout; out != "copied\n" {
		t.Errorf("copied file: %q", out)
	}
	e.MustRun("pause", "app")
	if r := e.Run("exec", "-T", "app", "true"); r.Code == 0 || !strings.Contains(r.Stderr, "is paused, unpause the container before exec") {
		t.Errorf("exec in a paused container: exit %d, %q", r.Code, r.Stderr)
	}
	e.MustRun("unpause", "app")
	e.MustRun("exec", "-T", "app", "true")
	e.MustRun("down", "-t", "1")
}
