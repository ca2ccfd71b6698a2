package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/tests/harness"
)

// TestPullFromRegistry: `pull` and `up` fetch images from a registry (an
// in-process one on 127.0.0.1); a missing image fails `up` with its name
// and creates nothing.
func TestPullFromRegistry(t *testing.T) {
	reg := testimage.StartRegistry(t)
	img, err := testimage.Busybox(testimage.WithFile("etc/motd", 0o644, "pulled\n"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push(context.Background(), "team/box:1", img)
	if err != nil {
		t.Fatal(err)
	}

	e := harness.New(t)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: pulled
services:
  box:
    image: %s
    command: ["sleep", "3600"]
    init: true
`, ref))
	e.MustRun("pull")
	if out := e.MustRun("image", "ls").Stdout; !strings.Contains(out, reg.Host+"/team/box") {
		t.Errorf("image ls after pull:\n%s", out)
	}
	e.MustRun("image", "rm", ref)
	// up pulls what is missing.
	e.MustRun("up", "-d")
	if out := e.MustRun("exec", "-T", "box", "cat", "/etc/motd").Stdout; out != "pulled\n" {
		t.Errorf("container of the pulled image: %q", out)
	}
	e.MustRun("down", "-t", "1")

	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: pulled
services:
  ok:
    image: %s
    command: ["sleep", "3600"]
  gone:
    image: %s/team/nothing:here
`, ref, reg.Host))
	r := e.Run("up", "-d")
	if r.Code == 0 || !strings.Contains(r.Stderr, "team/nothing:here") || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 1 {
		t.Errorf("missing image: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if list := ps(t, e); len(list) != 0 {
		t.Errorf("containers created despite the missing image: %+v", list)
	}
}
