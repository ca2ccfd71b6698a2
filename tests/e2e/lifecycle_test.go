package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// eventsOf streams `berth events --json` in the background and returns a
// function that stops it and returns what it saw.
func eventsOf(t *testing.T, e *harness.Env) func() []map[string]any {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, e.Bin, "events", "--json")
	cmd.Dir = e.Dir
	cmd.Env = append(os.Environ(), "BERTH_ROOT="+e.Root, "BERTH_RUN_ROOT="+e.RunRoot)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen []map[string]any
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				seen = append(seen, m)
			}
		}
	}()
	return func() []map[string]any {
		cancel()
		_ = cmd.Wait()
		<-done
		return seen
	}
}

func TestRestartPolicies(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: restarts
services:
  flaky:
    image: busybox
    command: ["sh", "-c", "date +%s.%N >> /tmp/runs; echo run; exit 1"]
    restart: on-failure:3
  always:
    image: busybox
    command: ["sleep", "3600"]
    restart: always
  unless:
    image: busybox
    command: ["sleep", "3600"]
    restart: unless-stopped
`)
	e.MustRun("up", "-d")
	stop := eventsOf(t, e)
	t.Cleanup(func() { stop() })

	// on-failure:3: the first run and exactly three restarts.
	waitFor(t, 20*time.Second, "flaky to give up", func() bool {
		for _, p := range ps(t, e, "flaky") {
			if p.State == "exited" {
				return true
			}
		}
		return false
	})
	time.Sleep(2 * time.Second) // a fourth restart would come within 1.6 s
	if n := strings.Count(e.MustRun("logs", "flaky").Stdout, "run"); n != 4 {
		t.Errorf("on-failure:3 ran %d times, want 1 + 3 restarts", n)
	}

	// always: restarted after its process is killed from outside (a
	// crash); not after `stop`.
	crash(t, e, "always")
	waitFor(t, 10*time.Second, "always to be restarted after a crash", func() bool {
		return restartCount(t, e, "always") >= 1 && ps(t, e, "always")[0].State == "running"
	})
	e.MustRun("stop", "always")
	time.Sleep(700 * time.Millisecond)
	if p := ps(t, e, "always")[0]; p.State != "exited" {
		t.Errorf("always restarted after stop: %s", p.State)
	}

	// unless-stopped: restarted after a crash, not after stop.
	crash(t, e, "unless")
	waitFor(t, 10*time.Second, "unless-stopped to be restarted", func() bool {
		return restartCount(t, e, "unless") >= 1 && ps(t, e, "unless")[0].State == "running"
	})
	e.MustRun("stop", "unless")
	time.Sleep(700 * time.Millisecond)
	if p := ps(t, e, "unless")[0]; p.State != "exited" {
		t.Errorf("unless-stopped restarted after stop: %s", p.State)
	}

	evs := stop()
	actions := map[string]int{}
	for _, ev := range evs {
		actions[ev["action"].(string)]++
	}
	if actions["die"] == 0 || actions["restart"] == 0 || actions["start"] == 0 {
		t.Errorf("events: %v", actions)
	}
	e.MustRun("down", "-t", "1")
}

// crash kills the service's first container's init with SIGKILL from the
// host, as an OOM killer or a crash would end it.
func crash(t *testing.T, e *harness.Env, service string) {
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
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// restartCount reads RestartCount from `ps --format json`.
func restartCount(t *testing.T, e *harness.Env, service string) int {
	t.Helper()
	out := e.MustRun("ps", "-a", "--format", "json", service).Stdout
	var p struct{ RestartCount int }
	_ = json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &p)
	return p.RestartCount
}

// TestRestartSurvivesSupervisorKill: a new supervisor keeps applying
// restart: always to the containers it adopted.
func TestRestartSurvivesSupervisorKill(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: adopt
services:
  app:
    image: busybox
    command: ["sleep", "3600"]
    restart: always
`)
	e.MustRun("up", "-d")
	sups := e.SupervisorPIDs()
	if len(sups) != 1 {
		t.Fatalf("supervisors: %v", sups)
	}
	_ = syscall.Kill(sups[0], syscall.SIGKILL)
	waitFor(t, 5*time.Second, "the supervisor to die", func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(sups[0]))
		return err != nil
	})
	if p := ps(t, e, "app")[0]; p.State != "running" {
		t.Fatalf("after adoption: %s", p.State)
	}
	crash(t, e, "app")
	waitFor(t, 10*time.Second, "the adopted container to be restarted", func() bool {
		return restartCount(t, e, "app") >= 1 && ps(t, e, "app")[0].State == "running"
	})
	e.MustRun("down", "-t", "1")
}

// TestHealthyChain: a service_healthy chain starts in order, each only after
// its dependency passes its check; a failing check fails `up --wait` with
// the service named.
func TestHealthyChain(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: chain
x-health: &health
  test: ["CMD-SHELL", "test -f /tmp/ready"]
  interval: 1s
  start_interval: 200ms
  start_period: 10s
services:
  db:
    image: busybox
    command: ["sh", "-c", "sleep 0.5; cut -d' ' -f1 /proc/uptime > /tmp/ready; exec sleep 3600"]
    init: true
    healthcheck: *health
  cache:
    image: busybox
    command: ["sh", "-c", "sleep 0.5; cut -d' ' -f1 /proc/uptime > /tmp/ready; exec sleep 3600"]
    init: true
    healthcheck: *health
    depends_on:
      db: {condition: service_healthy}
  app:
    image: busybox
    command: ["sh", "-c", "cut -d' ' -f1 /proc/uptime > /tmp/started; exec sleep 3600"]
    init: true
    depends_on:
      cache: {condition: service_healthy}
`)
	start := time.Now()
	r := e.MustRun("up", "-d", "--wait")
	took := time.Since(start)
	t.Logf("3-service service_healthy chain up in %v", took)
	for _, line := range []string{"Container chain-db-1  Waiting\n", "Container chain-db-1  Healthy\n", "Container chain-app-1  Healthy\n"} {
		if !strings.Contains(r.Stderr, line) {
			t.Errorf("up --wait does not say %q:\n%s", line, r.Stderr)
		}
	}
	stamp := func(svc, file string) float64 {
		out := strings.TrimSpace(e.MustRun("exec", "-T", svc, "cat", file).Stdout)
		n, err := strconv.ParseFloat(out, 64)
		if err != nil {
			t.Fatalf("%s:%s = %q", svc, file, out)
		}
		return n
	}
	dbReady, cacheReady, appStarted := stamp("db", "/tmp/ready"), stamp("cache", "/tmp/ready"), stamp("app", "/tmp/started")
	if !(dbReady < cacheReady && cacheReady < appStarted) {
		t.Errorf("order: db ready %.2f, cache ready %.2f, app started %.2f", dbReady, cacheReady, appStarted)
	}
	for _, p := range ps(t, e) {
		if p.Service != "app" && p.Health != "healthy" {
			t.Errorf("%s health %q", p.Name, p.Health)
		}
	}
	if !strings.Contains(e.MustRun("ps").Stdout, "(healthy)") {
		t.Error("ps does not show (healthy)")
	}
	e.MustRun("down", "-t", "1")

	e.WriteFile("compose.yaml", `
name: chain
services:
  sick:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    healthcheck:
      test: ["CMD", "false"]
      interval: 200ms
      retries: 2
`)
	r = e.Run("up", "-d", "--wait", "--wait-timeout", "20")
	if r.Code == 0 || !strings.Contains(r.Stderr, "chain-sick-1 is unhealthy") {
		t.Errorf("up --wait with a failing check: exit %d, stderr %q", r.Code, r.Stderr)
	}
	e.MustRun("down", "-t", "1")
}

// TestConvergence: `up -d` twice recreates nothing; changing one service's
// environment recreates that service only; orphans are removed on request.
func TestConvergence(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	compose := func(greeting string, withExtra bool) {
		extra := ""
		if withExtra {
			extra = "  extra:\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n    init: true\n"
		}
		e.WriteFile("compose.yaml", `
name: conv
services:
  a:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    environment: [GREETING=`+greeting+`]
  b:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    depends_on: [a]
`+extra)
	}
	ids := func() map[string]string {
		m := map[string]string{}
		for _, p := range ps(t, e) {
			m[p.Service] = p.ID
		}
		return m
	}
	compose("hello", true)
	e.MustRun("up", "-d")
	first := ids()
	r := e.MustRun("up", "-d")
	if again := ids(); again["a"] != first["a"] || again["b"] != first["b"] {
		t.Errorf("up -d with no change recreated: %v -> %v", first, again)
	}
	if !strings.Contains(r.Stderr, "conv-a-1  Running") {
		t.Errorf("second up: %s", r.Stderr)
	}
	compose("bonjour", false)
	r = e.MustRun("up", "-d")
	second := ids()
	if second["a"] == first["a"] || second["b"] != first["b"] {
		t.Errorf("env change of a: ids %v -> %v (want a replaced, b kept)", first, second)
	}
	if !strings.Contains(r.Stderr, "orphan containers (conv-extra-1)") {
		t.Errorf("orphan not reported: %s", r.Stderr)
	}
	if out := e.MustRun("exec", "-T", "a", "sh", "-c", "echo $GREETING").Stdout; strings.TrimSpace(out) != "bonjour" {
		t.Errorf("recreated a sees GREETING=%q", out)
	}
	e.MustRun("up", "-d", "--remove-orphans")
	if _, ok := ids()["extra"]; ok {
		t.Error("--remove-orphans left the orphan")
	}
	e.MustRun("up", "-d", "--force-recreate", "b")
	if third := ids(); third["b"] == second["b"] || third["a"] != second["a"] {
		t.Errorf("--force-recreate b: %v -> %v", second, third)
	}
	e.MustRun("down", "-t", "1")
}

// TestAbortOnContainerExit: the attached `up` stops the rest when one
// container exits and returns that container's code.
func TestAbortOnContainerExit(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: abort
services:
  job:
    image: busybox
    command: ["sh", "-c", "sleep 0.5; echo job done; exit 3"]
  server:
    image: busybox
    command: ["sleep", "3600"]
    init: true
`)
	r := e.Run("up", "--abort-on-container-exit", "--exit-code-from", "job")
	if r.Code != 3 {
		t.Errorf("exit %d, want 3 (job's)\nstdout %s\nstderr %s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "job-1") || !strings.Contains(r.Stdout, "job done") {
		t.Errorf("attached output lacks the job's log: %q", r.Stdout)
	}
	for _, p := range ps(t, e) {
		if p.State == "running" {
			t.Errorf("%s still running after the abort", p.Name)
		}
	}
	e.MustRun("down", "-t", "1")
}

// TestAttachedUpCtrlC: `up` without -d prints the logs with prefixes, and
// Ctrl-C stops the stack, as docker compose does.
func TestAttachedUpCtrlC(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: attached
services:
  talker:
    image: busybox
    command: ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo hello; while true; do sleep 0.1; done"]
`)
	cmd := exec.Command(e.Bin, "up")
	cmd.Dir = e.Dir
	cmd.Env = append(os.Environ(), "BERTH_ROOT="+e.Root, "BERTH_RUN_ROOT="+e.RunRoot)
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the service to run", func() bool {
		list := ps(t, e)
		return len(list) == 1 && list[0].State == "running"
	})
	time.Sleep(300 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("up after Ctrl-C: %v, want exit 130", err)
	}
	if !strings.Contains(out.String(), "talker-1  | hello") {
		t.Errorf("attached output: %q", out.String())
	}
	if list := ps(t, e); len(list) != 1 || list[0].State != "exited" {
		t.Errorf("after Ctrl-C: %+v", list)
	}
	e.MustRun("down")
}
