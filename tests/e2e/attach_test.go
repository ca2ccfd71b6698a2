package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// TestAttach: attach relays a stdin_open container's output and input,
// and returns its exit code when it ends.
func TestAttach(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: attach
services:
  app:
    image: busybox
    command: ["sh", "-c", "echo started; read line; echo got $$line; exit 5"]
    stdin_open: true
`)
	e.MustRun("up", "-d")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := berthCmd(ctx, e, "attach", "app")
	cmd.Stdin = strings.NewReader("hello\n")
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 5 || !strings.Contains(string(out), "got hello") {
		t.Errorf("attach: exit %d, output %q", code, out)
	}
	if r := e.Run("attach", "--detach-keys", "ctrl-", "app"); r.Code == 0 || !strings.Contains(r.Stderr, "invalid detach keys") {
		t.Errorf("bad detach keys: exit %d, %q", r.Code, r.Stderr)
	}
	e.MustRun("down", "-t", "1")
}

// TestUpAttachLines: an attached up says which containers it attaches to
// and how each exited; dependencies are attached only when asked, and
// --no-attach leaves a service out.
func TestUpAttachLines(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: lines
services:
  db:
    image: busybox
    command: ["sh", "-c", "echo db-line; sleep 0.5"]
  web:
    image: busybox
    command: ["sh", "-c", "sleep 0.5; echo web-line; exit 2"]
    depends_on: [db]
`)
	r := e.Run("up", "web")
	if !strings.Contains(r.Stdout, "Attaching to web-1\n") || !strings.Contains(r.Stdout, "web-line") ||
		!strings.Contains(r.Stdout, "web-1 exited with code 2\n") || strings.Contains(r.Stdout, "db-line") {
		t.Errorf("up web: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if i, j := strings.Index(r.Stdout, "web-line"), strings.Index(r.Stdout, "web-1 exited"); i < 0 || j < i {
		t.Errorf("the exit line before the last output: %q", r.Stdout)
	}
	r = e.Run("up", "--attach-dependencies", "web")
	if !strings.Contains(r.Stdout, "Attaching to db-1, web-1\n") || !strings.Contains(r.Stdout, "db-line") || !strings.Contains(r.Stdout, "db-1 exited with code 0\n") {
		t.Errorf("up --attach-dependencies web: stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
	r = e.Run("up", "--no-attach", "db")
	if !strings.Contains(r.Stdout, "Attaching to web-1\n") || strings.Contains(r.Stdout, "db-line") {
		t.Errorf("up --no-attach db: stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
	if r := e.Run("up", "--attach", "web", "--attach-dependencies"); r.Code == 0 {
		t.Errorf("--attach with --attach-dependencies accepted")
	}
	e.MustRun("down")
}

// TestAttachTerminal: attach to a tty container through a real terminal
// types into its shell, and ctrl-p ctrl-q detach, leaving it running.
func TestAttachTerminal(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: attachtty
services:
  sh:
    image: busybox
    command: ["sh"]
    tty: true
    stdin_open: true
`)
	e.MustRun("up", "-d")
	out, code := onPTY(t, e, func(master *os.File, seen func() string) {
		time.Sleep(300 * time.Millisecond) // attached
		master.Write([]byte("echo hi-$((40+2)); stty size\r"))
		waitSeen(t, seen, "hi-42")
		waitSeen(t, seen, "33 101")
		master.Write([]byte{16, 17}) // ctrl-p ctrl-q
	}, "attach", "sh")
	if code != 0 || !strings.Contains(out, "hi-42") {
		t.Errorf("attach: exit %d, output %q", code, out)
	}
	if r := e.MustRun("ps"); !strings.Contains(r.Stdout, "attachtty-sh-1") || !strings.Contains(r.Stdout, "running") && !strings.Contains(r.Stdout, "Up") {
		t.Errorf("after detaching: %s", r.Stdout)
	}
	e.MustRun("down", "-t", "1")
}
