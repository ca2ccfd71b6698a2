package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/supervisor"
	"github.com/berthrun/berth/tests/harness"
)

// runWithin runs berth and fails the test if it does not exit 0 within limit.
func runWithin(t *testing.T, e *harness.Env, limit time.Duration, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	out, err := berthCmd(ctx, e, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("berth %s did not finish within %v:\n%s", strings.Join(args, " "), limit, out)
	}
	if err != nil {
		t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("berth %s took %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// raiseNofile lifts this process's descriptor limit to its hard limit.
func raiseNofile(t *testing.T, need uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Max < need {
		t.Fatalf("hard nofile limit %d, the test needs %d", rl.Max, need)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
	}
}

// fdCount counts the open descriptors of pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// greeted dials addr and reads the server's greeting; the connection is
// returned open.
func greeted(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ok\n" {
		c.Close()
		return nil, fmt.Errorf("greeting %q: %v", line, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

// TestConnectionFlood: 5000 connections at once to a published port. The
// proxy serves up to its per-port limit and resets the rest, the
// supervisor keeps answering (a restart completes meanwhile), and once the
// clients close, its descriptors are back to where they were within 5 s.
func TestConnectionFlood(t *testing.T) {
	const clients = 5000
	raiseNofile(t, clients+2000)
	e := harness.New(t)
	// The limit and the descriptors are the userspace proxy's.
	e.Environ = append(e.Environ, "BERTH_PROXY=userspace")
	e.LoadImage("holdsrv:latest", testimage.WithEntries(testimage.Entry{Name: "holdsrv", Mode: 0o755, Body: harness.BuildStatic(t, "./testdata/holdsrv")}))
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: flood
services:
  web:
    image: holdsrv
    command: ["/holdsrv"]
    stop_grace_period: 2s
    ports: ["127.0.0.1:%d:80"]
`, port))
	e.MustRun("up", "-d")
	defer e.Run("down", "-t", "1")
	waitFor(t, 10*time.Second, "the server to answer through the proxy", func() bool {
		c, err := greeted(addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	pids := e.SupervisorPIDs()
	if len(pids) != 1 {
		t.Fatalf("supervisors: %v", pids)
	}
	sup := pids[0]
	time.Sleep(200 * time.Millisecond) // the warm-up connection's end
	baseline := fdCount(t, sup)
	t.Logf("supervisor descriptors before the flood: %d", baseline)

	var peak atomic.Int64
	stopPeak := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopPeak:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if ents, err := os.ReadDir("/proc/" + strconv.Itoa(sup) + "/fd"); err == nil && int64(len(ents)) > peak.Load() {
				peak.Store(int64(len(ents)))
			}
		}
	}()
	defer close(stopPeak)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	held = flood(t, addr, clients)

	// The supervisor answers while the connections are held, and a
	// restart goes through (the connections to the old container end
	// after its grace period; clients keep arriving meanwhile).
	ps(t, e)
	churn, stopChurn := context.WithCancel(context.Background())
	var churned atomic.Int64
	var churnWG sync.WaitGroup
	for range 20 {
		churnWG.Add(1)
		go func() {
			defer churnWG.Done()
			for churn.Err() == nil {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					churned.Add(1)
				}
			}
		}()
	}
	runWithin(t, e, 60*time.Second, "restart", "-t", "2", "web")
	stopChurn()
	churnWG.Wait()
	t.Logf("%d connections opened and closed during the restart", churned.Load())

	// The old container's connections leave the proxy, and the new one
	// gets a flood of its own.
	waitFor(t, 15*time.Second, "the server to answer after the restart", func() bool {
		c, err := greeted(addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	held = append(held, flood(t, addr, clients)...)
	t.Logf("supervisor descriptors at peak: %d", peak.Load())

	for _, c := range held {
		c.Close()
	}
	held = nil
	closed := time.Now()
	var now int
	for {
		now = fdCount(t, sup)
		if now <= baseline+10 {
			break
		}
		if time.Since(closed) > 5*time.Second {
			t.Fatalf("supervisor holds %d descriptors 5 s after the clients closed, %d before the flood", now, baseline)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("supervisor descriptors back to %d (%d before) %v after the clients closed", now, baseline, time.Since(closed).Round(time.Millisecond))
	log, err := os.ReadFile(supervisor.Paths{Root: e.Root, RunRoot: e.RunRoot}.Log("flood"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "too many open files") {
		t.Errorf("the supervisor ran out of descriptors:\n%s", lastLogLines(string(log), 10))
	}
	// The proxy logs into the supervisor's log, once per streak.
	if n := strings.Count(string(log), "connection limit reached"); n == 0 || n > 10 {
		t.Errorf("%d lines about the connection limit in the supervisor's log:\n%s", n, lastLogLines(string(log), 10))
	}
	e.MustRun("down", "-t", "1")
}

// flood dials addr from n clients at once and returns the connections that
// were served (greeted), open.
func flood(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var (
		mu      sync.Mutex
		held    []net.Conn
		refused atomic.Int64
		wg      sync.WaitGroup
	)
	start := time.Now()
	sem := make(chan struct{}, 1000)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := greeted(addr, 10*time.Second)
			if err != nil {
				refused.Add(1)
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("%d clients in %v: %d served, %d refused", n, time.Since(start).Round(time.Millisecond), len(held), refused.Load())
	if len(held) == 0 {
		t.Fatal("no client was served")
	}
	return held
}

func lastLogLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
