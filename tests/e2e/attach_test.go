package e2e

import (
	"context"
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
