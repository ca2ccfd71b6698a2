package e2e

import (
	"strings"
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// TestRemoveConfirmAndKillOrphans: rm asks before removing unless -f, as
// compose does; kill leaves containers of services the file no longer
// defines unless --remove-orphans.
func TestRemoveConfirmAndKillOrphans(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: rmconfirm
services:
  kept:
    image: busybox
    command: ["sleep", "3600"]
    init: true
  gone:
    image: busybox
    command: ["sleep", "3600"]
    init: true
`)
	e.MustRun("up", "-d")
	e.WriteFile("compose.yaml", `
name: rmconfirm
services:
  kept:
    image: busybox
    command: ["sleep", "3600"]
    init: true
`)
	states := func() map[string]string {
		m := map[string]string{}
		for _, p := range ps(t, e) {
			m[p.Service] = p.State
		}
		return m
	}
	// rm, forced or not, leaves running containers (rm -s stops them).
	if r := e.MustRun("rm", "-f"); !strings.Contains(r.Stderr, "No stopped containers") {
		t.Errorf("rm -f of running containers: stderr %q", r.Stderr)
	}
	if n := len(ps(t, e)); n != 2 {
		t.Fatalf("rm -f removed running containers: %d left", n)
	}
	e.MustRun("kill")
	if s := states(); s["kept"] != "exited" || s["gone"] != "running" {
		t.Fatalf("after kill: %v; want kept exited and the orphan running", s)
	}
	e.MustRun("kill", "--remove-orphans")
	if s := states(); s["gone"] != "exited" {
		t.Fatalf("after kill --remove-orphans: %v", s)
	}

	// No answer (end of input) keeps the containers; "y" removes them.
	r := e.RunInput("", "rm")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Going to remove") || !strings.Contains(r.Stdout, "rmconfirm-kept-1") {
		t.Fatalf("rm without an answer: exit %d, %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if n := len(ps(t, e)); n != 2 {
		t.Fatalf("rm without an answer removed containers: %d left", n)
	}
	if r := e.RunInput("y\n", "rm"); r.Code != 0 {
		t.Fatalf("rm, answered y: exit %d, %q", r.Code, r.Stderr)
	}
	if list := ps(t, e); len(list) != 0 {
		t.Fatalf("after rm, answered y: %+v", list)
	}
	e.MustRun("down")
}
