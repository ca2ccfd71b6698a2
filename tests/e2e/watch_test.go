package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// syncBuffer is a command's output read while it still runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startWatch starts berth with args in the background and waits for
// "Watch enabled"; the returned function interrupts it and waits.
func startWatch(t *testing.T, e *harness.Env, args ...string) (*syncBuffer, func()) {
	t.Helper()
	out := &syncBuffer{}
	cmd := e.Command(args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("berth %s did not end on SIGINT", strings.Join(args, " "))
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Watch enabled") {
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			stop()
			t.Fatalf("no \"Watch enabled\" from berth %s:\n%s", strings.Join(args, " "), out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return out, stop
}

// pollUntil polls until check passes, and says how long that took.
func pollUntil(t *testing.T, what string, limit time.Duration, check func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !check() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not seen within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestWatchSync: an edited file reaches the running container within a
// second; ignored files do not; deletions and new directories follow;
// sync+restart restarts the container after syncing, sync+exec runs its
// command; initial_sync copies the tree at start.
func TestWatchSync(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: wt
services:
  app:
    image: busybox:latest
    command: ["sh", "-c", "echo start >> /started; exec sleep 3600"]
    develop:
      watch:
        - path: ./src
          action: sync
          target: /app
          ignore: ["*.tmp", "cache/"]
        - path: ./conf
          action: sync+restart
          target: /etc/conf
        - path: ./early
          action: sync
          target: /early
          initial_sync: true
        - path: ./hooks
          action: sync+exec
          target: /hooks
          exec:
            command: ["sh", "-c", "cat /hooks/* > /hooked"]
`)
	e.WriteFile("src/keep", "")
	e.WriteFile("conf/keep", "")
	e.WriteFile("early/there.txt", "before\n")
	e.WriteFile("hooks/keep", "")
	out, stop := startWatch(t, e, "watch")
	defer stop()

	cat := func(p string) (string, bool) {
		r := e.Run("exec", "-T", "app", "cat", p)
		return r.Stdout, r.Code == 0
	}
	if got, _ := cat("/early/there.txt"); got != "before\n" {
		t.Errorf("initial_sync: /early/there.txt = %q", got)
	}

	// The copy must land within a second of the write; the time an exec
	// takes to answer is not the watch's.
	written := time.Now()
	e.WriteFile("src/a.txt", "one\n")
	var landed time.Duration
	pollUntil(t, "synced a.txt", 30*time.Second, func() bool {
		before := time.Since(written)
		got, _ := cat("/app/a.txt")
		if got == "one\n" {
			landed = before
			return true
		}
		return false
	})
	if landed > time.Second {
		t.Errorf("a.txt synced after %s, want within 1s", landed)
	}
	if !strings.Contains(out.String(), `Syncing service "app" after`) {
		t.Errorf("no sync line in:\n%s", out.String())
	}

	e.WriteFile("src/x.tmp", "ignored\n")
	e.WriteFile("src/cache/y", "ignored\n")
	e.WriteFile("src/sub/deep/b.txt", "two\n")
	pollUntil(t, "synced new directory", 30*time.Second, func() bool {
		got, _ := cat("/app/sub/deep/b.txt")
		return got == "two\n"
	})
	for _, p := range []string{"/app/x.tmp", "/app/cache/y"} {
		if _, ok := cat(p); ok {
			t.Errorf("ignored %s was synced", p)
		}
	}

	if err := os.Remove(filepath.Join(e.Dir, "src", "a.txt")); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "deletion of a.txt", 30*time.Second, func() bool {
		_, ok := cat("/app/a.txt")
		return !ok
	})

	e.WriteFile("hooks/h.txt", "hooked\n")
	pollUntil(t, "sync+exec", 30*time.Second, func() bool {
		got, _ := cat("/hooked")
		return got == "hooked\n"
	})

	e.WriteFile("conf/app.conf", "x=1\n")
	pollUntil(t, "sync+restart", 30*time.Second, func() bool {
		got, _ := cat("/started")
		return got == "start\nstart\n"
	})
	if got, _ := cat("/etc/conf/app.conf"); got != "x=1\n" {
		t.Errorf("/etc/conf/app.conf = %q after sync+restart", got)
	}
	stop()
	e.MustRun("down")
}

// TestWatchRebuild: `up --watch` follows the logs and, when a file of a
// rebuild trigger changes, builds the image again and recreates the
// container; a file .dockerignore excludes triggers nothing.
func TestWatchRebuild(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("app/Dockerfile", "FROM busybox:latest\nCOPY msg /msg\nCMD [\"sh\", \"-c\", \"cat /msg; exec sleep 3600\"]\n")
	e.WriteFile("app/msg", "v1\n")
	e.WriteFile("app/.dockerignore", "notes\n")
	e.WriteFile("compose.yaml", `
name: wr
services:
  app:
    build: ./app
    develop:
      watch:
        - path: ./app
          action: rebuild
`)
	out, stop := startWatch(t, e, "up", "--watch")
	defer stop()
	cat := func() string { return e.Run("exec", "-T", "app", "cat", "/msg").Stdout }
	if got := cat(); got != "v1\n" {
		t.Fatalf("/msg = %q at start", got)
	}
	id := e.MustRun("ps", "-q", "app").Stdout

	e.WriteFile("app/notes", "not in the context\n")
	time.Sleep(time.Second)
	if strings.Contains(out.String(), "Rebuilding") {
		t.Errorf("a .dockerignored file triggered a rebuild:\n%s", out.String())
	}

	e.WriteFile("app/msg", "v2\n")
	pollUntil(t, "rebuilt image running", 120*time.Second, func() bool { return cat() == "v2\n" })
	if got := e.MustRun("ps", "-q", "app").Stdout; got == id {
		t.Error("container not recreated")
	}
	if s := out.String(); !strings.Contains(s, `Rebuilding service "app"`) {
		t.Errorf("output lacks the rebuild:\n%s", s)
	}
	// The new container's log is followed from when the follower next
	// looks for containers (every 250 ms), a moment after it runs.
	pollUntil(t, "the new container's log in the output", 10*time.Second, func() bool {
		return strings.Contains(out.String(), "app-1  | v2")
	})
	stop()
	e.MustRun("down")
}

// TestWatchErrors: watch refuses a project with nothing to watch, and
// up refuses --watch with --detach.
func TestWatchErrors(t *testing.T) {
	e := harness.New(t)
	e.WriteFile("compose.yaml", "services:\n  app:\n    image: busybox:latest\n")
	r := e.Run("watch", "--no-up")
	if r.Code == 0 || !strings.Contains(r.Stderr, "none of the selected services is configured for watch") {
		t.Errorf("watch without develop: exit %d, stderr %q", r.Code, r.Stderr)
	}
	r = e.Run("up", "-d", "--watch")
	if r.Code == 0 || !strings.Contains(r.Stderr, "--detach and --watch can't be used together") {
		t.Errorf("up -d --watch: exit %d, stderr %q", r.Code, r.Stderr)
	}
}
