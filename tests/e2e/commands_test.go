package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// TestContainerCommands goes through the smaller commands on one stack:
// exec options, pause/unpause, kill -s, top, ls, logs --tail, wait, and
// rm -s -v with anonymous volumes; volumes_from and up -V too.
func TestContainerCommands(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: cmds
services:
  app:
    image: busybox
    command: ["sh", "-c", "for i in 1 2 3 4 5; do echo line $$i; done; trap 'echo got HUP' HUP; while true; do sleep 0.1; done"]
    init: true
    volumes: ["/scratch"]
  reader:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    volumes_from: ["app:ro"]
    depends_on: [app]
  job:
    image: busybox
    command: ["sh", "-c", "sleep 0.3; exit 4"]
`)
	e.MustRun("up", "-d")

	// exec: user, working directory, environment.
	out := e.MustRun("exec", "-T", "-u", "nobody", "-w", "/tmp", "-e", "GREETING=hi", "app", "sh", "-c", "id -un; pwd; echo $GREETING").Stdout
	if out != "nobody\n/tmp\nhi\n" {
		t.Errorf("exec -u -w -e: %q", out)
	}
	// volumes_from: the reader sees app's anonymous volume, read-only.
	e.MustRun("exec", "-T", "app", "sh", "-c", "echo shared > /scratch/f")
	if got := e.MustRun("exec", "-T", "reader", "cat", "/scratch/f").Stdout; got != "shared\n" {
		t.Errorf("volumes_from: %q", got)
	}
	if r := e.Run("exec", "-T", "reader", "sh", "-c", "echo x > /scratch/g"); r.Code == 0 {
		t.Error("volumes_from app:ro is writable")
	}

	// wait returns the job's exit code.
	r := e.Run("wait", "job")
	if r.Code != 4 || strings.TrimSpace(r.Stdout) != "4" {
		t.Errorf("wait job: exit %d, %q", r.Code, r.Stdout)
	}

	// logs --tail.
	if got := e.MustRun("logs", "--no-log-prefix", "--tail", "2", "app").Stdout; got != "line 4\nline 5\n" {
		t.Errorf("logs --tail 2: %q", got)
	}

	// pause and unpause.
	e.MustRun("pause", "app")
	if p := ps(t, e, "app")[0]; p.State != "paused" {
		t.Errorf("after pause: %s", p.State)
	}
	e.MustRun("unpause", "app")
	if p := ps(t, e, "app")[0]; p.State != "running" {
		t.Errorf("after unpause: %s", p.State)
	}

	// kill -s HUP reaches the process, which keeps running.
	e.MustRun("kill", "-s", "HUP", "app")
	waitFor(t, 5*time.Second, "the HUP to be logged", func() bool {
		return strings.Contains(e.MustRun("logs", "app").Stdout, "got HUP")
	})
	if p := ps(t, e, "app")[0]; p.State != "running" {
		t.Errorf("after kill -s HUP: %s", p.State)
	}

	// top and ls.
	if top := e.MustRun("top", "app").Stdout; !strings.Contains(top, "cmds-app-1") || !strings.Contains(top, "sh -c") {
		t.Errorf("top: %q", top)
	}
	if ls := e.MustRun("ls").Stdout; !strings.Contains(ls, "cmds") || !strings.Contains(ls, "running(2)") {
		t.Errorf("ls: %q", ls)
	}

	// up -V gives the recreated app a new anonymous volume; without it the
	// data stays.
	e.MustRun("up", "-d", "--force-recreate", "app")
	if got := e.Run("exec", "-T", "app", "cat", "/scratch/f").Stdout; got != "shared\n" {
		t.Errorf("a recreated container lost its anonymous volume: %q", got)
	}
	e.MustRun("up", "-d", "--force-recreate", "-V", "app")
	if r := e.Run("exec", "-T", "app", "cat", "/scratch/f"); r.Code == 0 {
		t.Error("up -V kept the anonymous volume's data")
	}

	// rm -s -v removes the containers and their anonymous volumes; the
	// volume that -V replaced is left dangling, as with docker, for prune.
	before := strings.Fields(e.MustRun("volume", "ls", "-q").Stdout)
	e.MustRun("rm", "-s", "-v", "-f")
	if list := ps(t, e); len(list) != 0 {
		t.Errorf("after rm -s -v: %+v", list)
	}
	after := strings.Fields(e.MustRun("volume", "ls", "-q").Stdout)
	if len(before) != 2 || len(after) != 1 {
		t.Errorf("anonymous volumes: %v before rm -v, %v after; want the current one removed", before, after)
	}
	e.MustRun("volume", "prune", "-f")
	if vols := strings.TrimSpace(e.MustRun("volume", "ls", "-q").Stdout); vols != "" {
		t.Errorf("volume prune left %q", vols)
	}
	e.MustRun("down")
}

// TestLogsFollow: logs -f prints lines as they come and ends when the
// container exits; --since leaves older lines out.
func TestLogsFollow(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: follow
services:
  ticker:
    image: busybox
    command: ["sh", "-c", "echo early; sleep 1.5; for i in 1 2 3; do echo tick $$i; sleep 0.2; done"]
`)
	e.MustRun("up", "-d")
	start := time.Now()
	out := e.MustRun("logs", "-f", "--no-log-prefix", "ticker").Stdout
	if out != "early\ntick 1\ntick 2\ntick 3\n" {
		t.Errorf("logs -f: %q", out)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("logs -f took %v to end after the container exited", took)
	}
	if out := e.MustRun("logs", "--since", "1s", "--no-log-prefix", "ticker").Stdout; strings.Contains(out, "early") {
		t.Errorf("--since 1s printed an older line: %q", out)
	}
	e.MustRun("down")
}
