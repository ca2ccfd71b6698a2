package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// manyReplicas is a project of one service with n replicas that start fast
// and stop at once.
func manyReplicas(n int) string {
	return fmt.Sprintf(`
name: many
services:
  web:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    stop_grace_period: 1s
    deploy:
      replicas: %d
`, n)
}

// TestReplicaCeiling: more replicas than the ceiling fail up, --scale and
// scale with an error that says how to raise it, and nothing is created.
func TestReplicaCeiling(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", manyReplicas(3000))
	for _, args := range [][]string{{"up", "-d"}, {"up", "-d", "--no-start"}} {
		r := e.Run(args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, `service "web": 3000 replicas exceed the limit of 100`) || !strings.Contains(r.Stderr, "BERTH_MAX_REPLICAS") {
			t.Errorf("berth %s with 3000 replicas: exit %d\n%s", strings.Join(args, " "), r.Code, r.Stderr)
		}
	}
	if n := len(e.SupervisorPIDs()); n != 0 {
		t.Errorf("%d supervisors started for a refused up", n)
	}

	e.WriteFile("compose.yaml", manyReplicas(1))
	for _, args := range [][]string{{"up", "-d", "--scale", "web=3000"}, {"scale", "web=3000"}} {
		r := e.Run(args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "3000 replicas exceed the limit of 100") {
			t.Errorf("berth %s: exit %d\n%s", strings.Join(args, " "), r.Code, r.Stderr)
		}
	}
	if list := ps(t, e); len(list) != 0 {
		t.Errorf("containers after refused ups: %+v", list)
	}

	// The ceiling is the user's to change, and a bad value is an error.
	e.Environ = []string{"BERTH_MAX_REPLICAS=2"}
	if r := e.Run("up", "-d", "--scale", "web=3"); r.Code == 0 || !strings.Contains(r.Stderr, "limit of 2") {
		t.Errorf("up --scale web=3 with BERTH_MAX_REPLICAS=2: exit %d\n%s", r.Code, r.Stderr)
	}
	e.Environ = []string{"BERTH_MAX_REPLICAS=lots"}
	if r := e.Run("up", "-d"); r.Code == 0 || !strings.Contains(r.Stderr, "BERTH_MAX_REPLICAS") {
		t.Errorf("up with BERTH_MAX_REPLICAS=lots: exit %d\n%s", r.Code, r.Stderr)
	}
	e.Environ = []string{"BERTH_MAX_REPLICAS=2"}
	e.MustRun("up", "-d", "--scale", "web=2")
	if n := len(ps(t, e)); n != 2 {
		t.Errorf("%d containers, want 2", n)
	}
	e.MustRun("down", "-t", "1")
}

// containerDirs lists what is left on disk of containers: records and logs,
// and rootfs directories in the image store (the harness checks mounts and
// runtime state).
func containerDirs(t *testing.T, e *harness.Env) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{filepath.Join(e.Root, "containers"), filepath.Join(e.Root, "image", "containers")} {
		ents, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, d := range ents {
			out = append(out, filepath.Join(dir, d.Name()))
		}
	}
	return out
}

// checkNothingLeft fails the test if a container or its directories are
// left.
func checkNothingLeft(t *testing.T, e *harness.Env) {
	t.Helper()
	if n := containerCount(t, e); n != 0 {
		t.Errorf("%d containers after down -v", n)
	}
	if left := containerDirs(t, e); len(left) > 0 {
		t.Errorf("left on disk after down -v: %v", left)
	}
}

// containerCount counts the project's containers, as ps lists them.
func containerCount(t *testing.T, e *harness.Env) int {
	t.Helper()
	return len(ps(t, e))
}

// TestUpStopsWithItsClient: an up of many replicas whose CLI is killed
// stops creating; a down -v then removes everything (the harness checks
// that no mount, process or state is left).
func TestUpStopsWithItsClient(t *testing.T) {
	const replicas = 60
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", manyReplicas(replicas))
	cmd := berthCmd(context.Background(), e, "up", "-d")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "a couple of containers", func() bool { return containerCount(t, e) >= 2 })
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	killed := containerCount(t, e)

	// What was being created when the client went is finished or rolled
	// back; nothing more is started.
	var settled int
	waitFor(t, 30*time.Second, "creation to stop", func() bool {
		n := containerCount(t, e)
		time.Sleep(time.Second)
		settled = containerCount(t, e)
		return settled == n
	})
	t.Logf("%d containers when the client was killed, %d once settled, of %d", killed, settled, replicas)
	if settled > killed+2*replicaWorkers() {
		t.Errorf("%d containers after the client was killed with %d: the up went on", settled, killed)
	}
	if settled >= replicas {
		t.Fatalf("all %d replicas created: the up was not cancelled", replicas)
	}
	runWithin(t, e, 2*time.Minute, "down", "-v", "-t", "1")
	checkNothingLeft(t, e)
}

// replicaWorkers is an upper bound on the replicas a supervisor converges
// at once (supervisor.replicaConcurrency on this machine).
func replicaWorkers() int { return 16 }

// TestDownCancelsUp: a down during a long up does not wait for the up to
// finish: it cancels it and removes everything.
func TestDownCancelsUp(t *testing.T) {
	const replicas = 60
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", manyReplicas(replicas))
	var upOut bytes.Buffer
	up := berthCmd(context.Background(), e, "up", "-d")
	up.Stdout, up.Stderr = &upOut, &upOut
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	upDone := make(chan error, 1)
	go func() { upDone <- up.Wait() }()
	waitFor(t, 60*time.Second, "a couple of containers", func() bool { return containerCount(t, e) >= 2 })
	// The supervisor answers while it creates.
	runWithin(t, e, 10*time.Second, "ps", "-a")
	runWithin(t, e, 2*time.Minute, "down", "-v", "-t", "1")
	select {
	case err := <-upDone:
		if err == nil {
			t.Errorf("up went on to success under a down:\n%s", upOut.String())
		} else if !strings.Contains(upOut.String(), "up cancelled by down") {
			t.Errorf("up cancelled by a down: %v\n%s", err, upOut.String())
		}
	case <-time.After(30 * time.Second):
		_ = up.Process.Kill()
		t.Fatalf("up still running 30 s after the down ended:\n%s", upOut.String())
	}
	checkNothingLeft(t, e)
}

// TestUpAndDownInParallel: ups and downs sent at the same moment end, in
// whatever order, and a last down leaves nothing.
func TestUpAndDownInParallel(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", manyReplicas(3))
	for i := range 3 {
		var wg sync.WaitGroup
		for _, args := range [][]string{{"up", "-d"}, {"down", "-v", "-t", "1"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				out, err := berthCmd(ctx, e, args...).CombinedOutput()
				if ctx.Err() != nil {
					t.Errorf("round %d: berth %s did not end:\n%s", i, strings.Join(args, " "), out)
				}
				// up may lose to the down: cancelled is an answer.
				if err != nil && !strings.Contains(string(out), "up cancelled by down") {
					t.Errorf("round %d: berth %s: %v\n%s", i, strings.Join(args, " "), err, out)
				}
			}()
		}
		wg.Wait()
	}
	runWithin(t, e, 2*time.Minute, "down", "-v", "-t", "1")
	checkNothingLeft(t, e)
}
