package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/tests/harness"
)

func TestNamedVolumeKeepsData(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.MustRun("volume", "create", "keepme")
	e.WriteFile("compose.yaml", `
name: vols
services:
  app:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    restart: always
    volumes:
      - data:/data
      - keep:/keep
volumes:
  data: {}
  keep:
    external: true
    name: keepme
`)
	e.MustRun("up", "-d")
	e.MustRun("exec", "-T", "app", "sh", "-c", "echo one > /data/f; echo ext > /keep/f")
	read := func() string {
		return strings.TrimSpace(e.MustRun("exec", "-T", "app", "cat", "/data/f").Stdout)
	}

	e.MustRun("down")
	if out := e.MustRun("volume", "ls", "-q").Stdout; !strings.Contains(out, "vols_data") {
		t.Fatalf("down removed the named volume: %q", out)
	}
	e.MustRun("up", "-d")
	if got := read(); got != "one" {
		t.Errorf("after down/up: %q", got)
	}

	// A supervisor killed with SIGKILL, then the container killed: the
	// restarted container sees the same data.
	for _, pid := range e.SupervisorPIDs() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	time.Sleep(200 * time.Millisecond)
	crash(t, e, "app")
	waitFor(t, 10*time.Second, "the restart", func() bool {
		return restartCount(t, e, "app") >= 1 && ps(t, e, "app")[0].State == "running"
	})
	if got := read(); got != "one" {
		t.Errorf("after a supervisor SIGKILL and a crash: %q", got)
	}

	e.MustRun("down", "-v")
	out := e.MustRun("volume", "ls", "-q").Stdout
	if strings.Contains(out, "vols_data") {
		t.Errorf("down -v left the project's volume: %q", out)
	}
	if !strings.Contains(out, "keepme") {
		t.Fatalf("down -v removed an external volume: %q", out)
	}
	b, err := os.ReadFile(filepath.Join(e.Root, "volumes", "keepme", "_data", "f"))
	if err != nil || strings.TrimSpace(string(b)) != "ext" {
		t.Errorf("external volume's data: %q, %v", b, err)
	}
	e.MustRun("volume", "rm", "keepme")
}

func TestCopyUp(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("seeded:latest", testimage.WithFile("data/seed.txt", 0o640, "from the image\n"))
	e.WriteFile("compose.yaml", `
name: copyup
services:
  fresh:
    image: seeded
    command: ["sleep", "3600"]
    init: true
    volumes: [fresh:/data]
  used:
    image: seeded
    command: ["sleep", "3600"]
    init: true
    volumes: [used:/data]
volumes:
  fresh: {}
  used:
    external: true
`)
	e.MustRun("volume", "create", "used")
	if err := os.WriteFile(filepath.Join(e.Root, "volumes", "used", "_data", "mine.txt"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.MustRun("up", "-d")
	if out := e.MustRun("exec", "-T", "fresh", "cat", "/data/seed.txt").Stdout; out != "from the image\n" {
		t.Errorf("empty volume did not get the image's content: %q", out)
	}
	out := e.MustRun("exec", "-T", "used", "ls", "/data").Stdout
	if strings.Contains(out, "seed.txt") || !strings.Contains(out, "mine.txt") {
		t.Errorf("a volume with files must hide the image's content: %q", out)
	}
	e.MustRun("down", "-v")
	e.MustRun("volume", "rm", "used")
}

func TestMissingExternalVolume(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: missing
services:
  a:
    image: busybox
    command: ["sleep", "3600"]
  b:
    image: busybox
    command: ["sleep", "3600"]
    volumes: [graylog:/data]
volumes:
  graylog:
    external: true
`)
	r := e.Run("up", "-d")
	if r.Code == 0 || !strings.Contains(r.Stderr, `external volume "graylog" not found`) || !strings.Contains(r.Stderr, "berth volume create graylog") {
		t.Errorf("up with a missing external volume: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if list := ps(t, e); len(list) != 0 {
		t.Errorf("containers were created: %+v", list)
	}
	if out := e.MustRun("volume", "ls", "-q").Stdout; strings.TrimSpace(out) != "" {
		t.Errorf("volumes were created: %q", out)
	}
}

func TestBindMountsAndSharedVolume(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("site/index.html", "hello from the host\n")
	e.WriteFile("compose.yaml", `
name: binds
services:
  web:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    volumes:
      - ./site:/site:ro
      - ./made-by-berth:/made
      - shared:/shared
    deploy:
      replicas: 2
volumes:
  shared: {}
`)
	e.MustRun("up", "-d")
	if out := e.MustRun("exec", "-T", "web", "cat", "/site/index.html").Stdout; out != "hello from the host\n" {
		t.Errorf("relative bind: %q", out)
	}
	if r := e.Run("exec", "-T", "web", "sh", "-c", "echo x > /site/new"); r.Code == 0 {
		t.Error("a read-only bind mount accepted a write")
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "made-by-berth")); err != nil {
		t.Errorf("a missing short-syntax bind source was not created: %v", err)
	}
	e.MustRun("exec", "-T", "--index", "1", "web", "sh", "-c", "echo one > /shared/from-1")
	e.MustRun("exec", "-T", "--index", "2", "web", "sh", "-c", "echo two > /shared/from-2")
	for _, idx := range []string{"1", "2"} {
		out := e.MustRun("exec", "-T", "--index", idx, "web", "ls", "/shared").Stdout
		if !strings.Contains(out, "from-1") || !strings.Contains(out, "from-2") {
			t.Errorf("replica %s sees %q", idx, out)
		}
	}
	e.MustRun("down", "-v")
}
