package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// fault arms the supervisor that this command spawns to kill itself at
// step (see internal/fault).
func fault(step string) []string { return []string{"BERTH_FAULT=" + step} }

// downAndWait takes the project down and waits until its supervisor has
// exited, so that the next command spawns a new one (with its fault armed)
// and nothing of the old one is counted as a leak.
func downAndWait(t *testing.T, e *harness.Env, args ...string) harness.Result {
	t.Helper()
	r := e.MustRun(append([]string{"down", "-t", "1"}, args...)...)
	waitFor(t, 10*time.Second, "the supervisor to exit", func() bool { return len(e.SupervisorPIDs()) == 0 })
	return r
}

// initPID is the host PID of the service's first container's init, from
// berth top.
func initPID(t *testing.T, e *harness.Env, service string) int {
	t.Helper()
	out := e.MustRun("top", service).Stdout
	lines := strings.Split(out, "\n")
	if len(lines) < 3 {
		t.Fatalf("top %s: %q", service, out)
	}
	pid, err := strconv.Atoi(strings.Fields(lines[2])[1])
	if err != nil {
		t.Fatalf("top %s: %q", service, out)
	}
	return pid
}

// runtimeDirs lists the libcontainer state directories of the Env.
func runtimeDirs(e *harness.Env) []string {
	entries, _ := os.ReadDir(filepath.Join(e.RunRoot, "runtime"))
	var out []string
	for _, d := range entries {
		out = append(out, d.Name())
	}
	return out
}

// TestKillDuringStart: a supervisor killed while it starts a container
// (its libcontainer state made, the process not yet running) leaves a state
// directory without state.json; the next up starts the container anyway,
// and down leaves neither the directory nor the container's cgroups.
func TestKillDuringStart(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: killstart
services:
  db:
    image: busybox
    command: ["sleep", "3600"]
    init: true
`)
	for _, step := range []string{"start.after-runtime-create", "start.after-run"} {
		t.Run(step, func(t *testing.T) {
			r := e.RunEnv(fault(step), "up", "-d")
			if r.Code == 0 {
				t.Fatalf("up with the supervisor killed at %s succeeded: %s", step, r.Stderr)
			}
			if !strings.Contains(r.Stderr, "Starting") {
				t.Errorf("killed before Starting: %s", r.Stderr)
			}
			if len(e.SupervisorPIDs()) != 0 {
				t.Fatalf("the supervisor survived its fault")
			}
			if len(runtimeDirs(e)) != 1 {
				t.Fatalf("runtime dirs after the kill: %v", runtimeDirs(e))
			}
			e.MustRun("up", "-d")
			list := ps(t, e)
			if len(list) != 1 || list[0].State != "running" {
				t.Fatalf("after the next up: %+v", list)
			}
			downAndWait(t, e)
			if leaks := e.Leaks(); len(leaks) > 0 {
				t.Fatalf("left after down: %v", leaks)
			}
		})
	}
}

// TestKillDuringRestartPolicyRestart: a supervisor killed while a restart
// policy restarts a container leaves it "restarting"; the next supervisor
// restarts it (no "container already exists") and counts the restart once.
func TestKillDuringRestartPolicyRestart(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: killrestart
services:
  app:
    image: busybox
    command: ["sleep", "3600"]
    restart: always
`)
	for _, step := range []string{"restart.before-start", "restart.after-runtime-create"} {
		t.Run(step, func(t *testing.T) {
			downAndWait(t, e)
			e.RunEnv(fault(step), "up", "-d")
			crash(t, e, "app")
			waitFor(t, 10*time.Second, "the supervisor to die at "+step, func() bool {
				return len(e.SupervisorPIDs()) == 0
			})
			// ps starts a supervisor, which adopts the project.
			waitFor(t, 10*time.Second, "the container to run again", func() bool {
				p := ps(t, e, "app")
				return len(p) == 1 && p[0].State == "running"
			})
			if n := restartCount(t, e, "app"); n != 1 {
				t.Errorf("RestartCount = %d after one crash, want 1", n)
			}
			e.MustRun("down", "-t", "1")
		})
	}
}

// TestRestartCountAfterAdoption: an exit that happens while no supervisor
// runs is counted once, as is one whose restart the supervisor had
// scheduled when it died.
func TestRestartCountAfterAdoption(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: recount
services:
  app:
    image: busybox
    command: ["sleep", "3600"]
    restart: always
`)
	e.MustRun("up", "-d")
	pid := initPID(t, e, "app")
	e.KillSupervisors()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// up adopts (the restart policy schedules a restart) and starts what
	// is not running: one restart either way.
	e.MustRun("up", "-d")
	waitFor(t, 10*time.Second, "the container to run again", func() bool {
		p := ps(t, e, "app")
		return len(p) == 1 && p[0].State == "running"
	})
	// Let a doubled count, if any, show.
	time.Sleep(500 * time.Millisecond)
	if n := restartCount(t, e, "app"); n != 1 {
		t.Errorf("RestartCount = %d after one exit while no supervisor ran, want 1", n)
	}
	e.MustRun("down", "-t", "1")
}

// TestKillDuringCreate: a supervisor killed in the middle of a create (the
// rootfs mounted, the volume in use, the network attached) leaves nothing
// that down -v cannot remove: no "network still in use", no volume held by
// a container that does not exist.
func TestKillDuringCreate(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: killcreate
services:
  db:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    volumes: ["dbdata:/data"]
volumes:
  dbdata:
`)
	for _, step := range []string{"create.intent", "create.after-rootfs", "create.after-volumes", "create.after-network", "create.after-ports", "create.after-record"} {
		t.Run(step, func(t *testing.T) {
			r := e.RunEnv(fault(step), "up", "-d")
			if r.Code == 0 {
				t.Fatalf("up with the supervisor killed at %s succeeded", step)
			}
			if len(e.SupervisorPIDs()) != 0 {
				t.Fatalf("the supervisor survived its fault")
			}
			r = downAndWait(t, e, "-v")
			if strings.Contains(r.Stderr, "in use") {
				t.Errorf("down -v after a kill at %s: %s", step, r.Stderr)
			}
			if leaks := append(e.Leaks(), e.LiveLeaks()...); len(leaks) > 0 {
				t.Errorf("left after down -v: %v", leaks)
			}
			if _, err := os.Stat(filepath.Join(e.Root, "volumes", "killcreate_dbdata")); err == nil {
				t.Errorf("the volume survived down -v")
			}
			// A kill followed by up converges to one container.
			e.RunEnv(fault(step), "up", "-d")
			e.MustRun("up", "-d")
			if list := ps(t, e); len(list) != 1 || list[0].State != "running" {
				t.Errorf("after a kill at %s and up: %+v", step, list)
			}
			downAndWait(t, e, "-v")
		})
	}
}

// TestKillDuringRemove: a supervisor killed half way through removing a
// container finishes the removal when the next one starts.
func TestKillDuringRemove(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: killrm
services:
  db:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    volumes: ["dbdata:/data"]
volumes:
  dbdata:
`)
	for _, step := range []string{"remove.intent", "remove.after-runtime", "remove.after-volumes", "remove.after-network", "remove.after-rootfs"} {
		t.Run(step, func(t *testing.T) {
			e.MustRun("up", "-d")
			e.KillSupervisors()
			if r := e.RunEnv(fault(step), "down", "-v", "-t", "1"); r.Code == 0 {
				t.Fatalf("down with the supervisor killed at %s succeeded", step)
			}
			downAndWait(t, e, "-v")
			if leaks := append(e.Leaks(), e.LiveLeaks()...); len(leaks) > 0 {
				t.Errorf("left after down -v: %v", leaks)
			}
		})
	}
}

// TestConcurrentSpawn: two ups at once with no supervisor running spawn
// one each; the one that loses the lock exits at once and its CLI reaches
// the winner, without waiting out a timeout.
func TestConcurrentSpawn(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: spawnrace
services:
  a:
    image: busybox
    command: ["sleep", "3600"]
    init: true
`)
	for round := range 3 {
		var wg sync.WaitGroup
		took := make([]time.Duration, 2)
		codes := make([]int, 2)
		for i := range took {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				codes[i] = e.Run("up", "-d").Code
				took[i] = time.Since(start)
			}()
		}
		wg.Wait()
		for i := range took {
			if codes[i] != 0 {
				t.Errorf("round %d: up %d exited %d", round, i, codes[i])
			}
			// The lost race used to cost 10 s (the loser waited for the
			// lock); an up of one container takes well under a second.
			if took[i] > 7*time.Second {
				t.Errorf("round %d: up %d took %v", round, i, took[i])
			}
		}
		if list := ps(t, e); len(list) != 1 {
			t.Errorf("round %d: %d containers, want 1", round, len(list))
		}
		downAndWait(t, e)
	}
}

// TestFailuresAreLoggedAndSent: a failed operation is in the supervisor's
// log with its container and error, and berth events shows it.
func TestFailuresAreLoggedAndSent(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: failing
services:
  ok:
    image: busybox
    command: ["sleep", "3600"]
    init: true
  broken:
    image: busybox
    command: ["/no/such/command"]
    depends_on: [ok]
`)
	e.MustRun("up", "-d", "ok")
	stop := eventsOf(t, e)
	time.Sleep(300 * time.Millisecond) // the stream is open
	if r := e.Run("up", "-d"); r.Code == 0 {
		t.Fatalf("up of a missing command succeeded")
	}
	var found bool
	waitFor(t, 5*time.Second, "an error event", func() bool {
		b, _ := os.ReadFile(filepath.Join(e.RunRoot, "projects", "failing", "supervisor.log"))
		found = strings.Contains(string(b), "container failing-broken-1: start:") && strings.Contains(string(b), "/no/such/command")
		return found
	})
	// The event is sent after the log line is written, and reaches the
	// events command through the supervisor's stream: give it a moment.
	time.Sleep(time.Second)
	events := stop()
	var sawError bool
	for _, ev := range events {
		attrs, _ := ev["attributes"].(map[string]any)
		if ev["action"] == "error" && attrs["name"] == "failing-broken-1" && strings.Contains(attrs["error"].(string), "/no/such/command") {
			sawError = true
		}
	}
	if !sawError {
		t.Errorf("no error event for failing-broken-1 in %v", events)
	}
	e.MustRun("down", "-t", "1")
}

// TestDependsOnRestart: with depends_on restart: true, recreating a
// dependency restarts its dependents.
func TestDependsOnRestart(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	compose := `
name: deprestart
services:
  db:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    environment:
      VERSION: "%s"
  app:
    image: busybox
    command: ["sh", "-c", "echo started; exec sleep 3600"]
    init: true
    depends_on:
      db:
        condition: service_started
        restart: true
`
	e.WriteFile("compose.yaml", strings.Replace(compose, "%s", "1", 1))
	e.MustRun("up", "-d")
	appID := ps(t, e, "app")[0].ID
	e.WriteFile("compose.yaml", strings.Replace(compose, "%s", "2", 1))
	r := e.MustRun("up", "-d")
	if !strings.Contains(r.Stderr, "deprestart-app-1  Restarting") {
		t.Errorf("up after db changed did not restart app:\n%s", r.Stderr)
	}
	if id := ps(t, e, "app")[0].ID; id != appID {
		t.Errorf("app was recreated (%s -> %s), not restarted", appID, id)
	}
	waitFor(t, 10*time.Second, "app's second start", func() bool {
		return strings.Count(e.MustRun("logs", "app").Stdout, "started") == 2
	})
	e.MustRun("down", "-t", "1")
}

// TestKillDuringRecreate: a supervisor killed after removing a container it
// recreates, before creating the successor, leaves the old container's
// anonymous volume to the successor that the next up creates, and down -v
// still removes it.
func TestKillDuringRecreate(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: killrecreate
services:
  app:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    volumes: ["/data"]
`)
	for _, step := range []string{"remove.intent", "remove.after-volumes", "remove.after-rootfs"} {
		t.Run(step, func(t *testing.T) {
			e.MustRun("up", "-d")
			e.MustRun("exec", "-T", "app", "sh", "-c", "echo kept > /data/f")
			e.KillSupervisors()
			if r := e.RunEnv(fault(step), "up", "-d", "--force-recreate"); r.Code == 0 {
				t.Fatalf("up with the supervisor killed at %s succeeded", step)
			}
			e.MustRun("up", "-d")
			if out := e.MustRun("exec", "-T", "app", "cat", "/data/f").Stdout; strings.TrimSpace(out) != "kept" {
				t.Errorf("after a kill at %s the successor's /data has %q", step, out)
			}
			downAndWait(t, e, "-v")
			if vols, _ := filepath.Glob(filepath.Join(e.Root, "volumes", "*", "volume.json")); len(vols) > 0 {
				t.Errorf("volumes left after down -v: %v", vols)
			}
		})
	}
}
