package e2e

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// psEntry is the part of `ps --format json` the tests read.
type psEntry struct {
	Name     string
	Service  string
	State    string
	Status   string
	Health   string
	ExitCode int
	ID       string
}

func ps(t *testing.T, e *harness.Env, args ...string) []psEntry {
	t.Helper()
	out := e.MustRun(append([]string{"ps", "-a", "--format", "json"}, args...)...).Stdout
	var list []psEntry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var p psEntry
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("ps json %q: %v", line, err)
		}
		list = append(list, p)
	}
	return list
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exited(t *testing.T, e *harness.Env, service string) psEntry {
	t.Helper()
	var got psEntry
	waitFor(t, 20*time.Second, service+" to exit", func() bool {
		for _, p := range ps(t, e) {
			if p.Service == service && p.State == "exited" {
				got = p
				return true
			}
		}
		return false
	})
	return got
}

// TestContainerSandbox checks, from inside a container, what docker gives
// every container: PID 1 is the command, its own hostname, docker's
// capabilities and seccomp, masked /proc, read-only /sys, no mount, no host
// processes; and a 32 MiB memory limit ends in an OOM kill.
func TestContainerSandbox(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: sandbox
services:
  check:
    image: busybox
    hostname: checker
    command:
      - sh
      - -c
      - |
        echo "pid1=$(cat /proc/1/cmdline | tr '\0' ' ')"
        echo "hostname=$(hostname)"
        grep CapEff /proc/self/status | tr -d '\t'
        grep Seccomp: /proc/self/status | tr -d '\t'
        [ -e /proc/kcore ] && echo "kcore=$(wc -c < /proc/kcore)" || echo kcore=0
        echo "timer_list=$(wc -c < /proc/timer_list)"
        touch /sys/berth 2>/dev/null && echo sys=rw || echo sys=ro
        mount -t tmpfs none /mnt 2>/dev/null && echo mount=yes || echo mount=no
        echo "procs=$(ls -d /proc/[0-9]* | wc -l)"
  hog:
    image: busybox
    mem_limit: 32m
    command: ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]
`)
	e.MustRun("up", "-d")
	check := exited(t, e, "check")
	if check.ExitCode != 0 {
		t.Errorf("check exited %d", check.ExitCode)
	}
	out := e.MustRun("logs", "--no-log-prefix", "check").Stdout
	for _, want := range []string{
		"pid1=sh -c",
		"hostname=checker",
		"CapEff:00000000a80425fb",
		"Seccomp:2",
		"kcore=0",      // masked (or absent from this kernel)
		"timer_list=0", // masked: the host's is not empty
		"sys=ro",
		"mount=no",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inside the container: want %q in\n%s", want, out)
		}
	}
	if i := strings.Index(out, "procs="); i >= 0 {
		n, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(out[i+6:], "\n", 2)[0]))
		if n > 5 {
			t.Errorf("container sees %d processes: host PIDs leak in", n)
		}
	}
	hog := exited(t, e, "hog")
	if hog.ExitCode != 137 || !strings.Contains(hog.Status, "Exited (137)") {
		t.Errorf("memory hog: exit %d, status %q; want an OOM kill (137)", hog.ExitCode, hog.Status)
	}
	if strings.Contains(e.MustRun("logs", "hog").Stdout, "survived") {
		t.Error("the memory hog survived its 32m limit")
	}
	e.MustRun("down")
}

// TestDetachedSupervision: `up -d` returns while the containers run under a
// detached supervisor; a supervisor killed with SIGKILL leaves them running,
// the next command adopts them, and `down` removes everything.
func TestDetachedSupervision(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: detached
services:
  db:
    image: busybox
    command: ["sh", "-c", "echo ready; trap 'exit 0' TERM; while true; do sleep 0.1; done"]
  web:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    depends_on: [db]
    deploy:
      replicas: 2
`)
	r := e.MustRun("up", "-d")
	for _, want := range []string{"Container detached-db-1  Started", "Container detached-web-2  Started"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("up -d progress lacks %q:\n%s", want, r.Stderr)
		}
	}
	list := ps(t, e)
	if len(list) != 3 {
		t.Fatalf("ps: %+v", list)
	}
	for _, p := range list {
		if p.State != "running" {
			t.Errorf("%s is %s", p.Name, p.State)
		}
	}
	sups := e.SupervisorPIDs()
	if len(sups) != 1 {
		t.Fatalf("want one supervisor, found %v", sups)
	}
	if err := syscall.Kill(sups[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the supervisor to die", func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(sups[0]))
		return err != nil
	})
	// The containers did not notice; the next command adopts them.
	for _, p := range ps(t, e) {
		if p.State != "running" {
			t.Errorf("after the supervisor's death %s is %s", p.Name, p.State)
		}
	}
	if now := e.SupervisorPIDs(); len(now) != 1 || now[0] == sups[0] {
		t.Errorf("no new supervisor: %v", now)
	}
	r = e.Run("exec", "-T", "db", "sh", "-c", "echo adopted; exit 3")
	if r.Code != 3 || !strings.Contains(r.Stdout, "adopted") {
		t.Errorf("exec in an adopted container: exit %d, stdout %q", r.Code, r.Stdout)
	}
	if !strings.Contains(e.MustRun("logs", "db").Stdout, "ready") {
		t.Error("logs lost")
	}
	e.MustRun("down", "-t", "2")
	if list := ps(t, e); len(list) != 0 {
		t.Errorf("after down: %+v", list)
	}
}

// TestTTYAndStdinOpen: `tty: true` and `stdin_open: true` keep a shell
// waiting for input, as with docker; a tty container's output is logged.
func TestTTYAndStdinOpen(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: ttys
services:
  tty:
    image: busybox
    command: ["sh", "-c", "tty; echo from the tty; exec sh"]
    tty: true
  stdin:
    image: busybox
    command: ["sh"]
    stdin_open: true
`)
	e.MustRun("up", "-d")
	time.Sleep(500 * time.Millisecond)
	for _, p := range ps(t, e) {
		if p.State != "running" {
			t.Errorf("%s is %s: a shell with tty/stdin_open must wait for input", p.Name, p.State)
		}
	}
	out := e.MustRun("logs", "--no-log-prefix", "tty").Stdout
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "from the tty") {
		t.Errorf("tty container's log: %q", out)
	}
	e.MustRun("down", "-t", "1")
}

// TestConcurrentUp: three `up -d` at once make each container once (one
// supervisor, operations one at a time).
func TestConcurrentUp(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: conc
services:
  a:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    deploy:
      replicas: 3
  b:
    image: busybox
    command: ["sleep", "3600"]
    init: true
`)
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = e.Run("up", "-d").Code
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 0 {
			t.Errorf("up %d exited %d", i, c)
		}
	}
	if list := ps(t, e); len(list) != 4 {
		t.Errorf("%d containers after three concurrent ups, want 4: %+v", len(list), list)
	}
	if n := len(e.SupervisorPIDs()); n != 1 {
		t.Errorf("%d supervisors", n)
	}
	e.MustRun("down", "-t", "1")
}

// TestUpRightAfterDown: a command that reaches a supervisor just as it
// exits (its project became empty) is served by the next one.
func TestUpRightAfterDown(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", "name: quick\nservices:\n  once:\n    image: busybox\n    command: [\"true\"]\n")
	for i := 0; i < 15; i++ {
		e.MustRun("up")
		e.MustRun("down", "-t", "1")
	}
}

// TestMissingCommand: a command that does not exist fails `up` with its
// name, and the container shows docker's exit code 127.
func TestMissingCommand(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", "name: missingcmd\nservices:\n  a:\n    image: busybox\n    command: [\"no-such-command\"]\n")
	r := e.Run("up", "-d")
	if r.Code == 0 || !strings.Contains(r.Stderr, `"no-such-command": executable file not found`) {
		t.Errorf("up: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if list := ps(t, e); len(list) != 1 || list[0].ExitCode != 127 || !strings.HasPrefix(list[0].Status, "Exited (127)") {
		t.Errorf("ps: %+v", list)
	}
	e.MustRun("down")
}
