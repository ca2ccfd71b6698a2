package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// hostnames maps each replica's hostname to its container name.
func hostnames(t *testing.T, e *harness.Env, service string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range ps(t, e, service) {
		idx := p.Name[strings.LastIndex(p.Name, "-")+1:]
		h := strings.TrimSpace(e.MustRun("exec", "-T", "--index", idx, service, "hostname").Stdout)
		out[h] = p.Name
	}
	return out
}

// TestScaleBehindOnePort: five replicas behind one port served by the
// userspace proxy (TestKernelPortsReplicas does the same in the kernel).
func TestScaleBehindOnePort(t *testing.T) {
	e := harness.New(t)
	e.Environ = append(e.Environ, "BERTH_PROXY=userspace")
	e.LoadImage("busybox:latest")
	port := freePort(t)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: scaled
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && touch /tmp/healthy && exec httpd -f -p 80 -h /www"]
    init: true
    stop_grace_period: 2s
    ports: ["127.0.0.1:%d:80"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/healthy"]
      interval: 300ms
      start_interval: 100ms
      start_period: 5s
      retries: 1
`, port))
	e.MustRun("up", "-d", "--wait")
	start := time.Now()
	e.MustRun("scale", "web=5")
	t.Logf("scale 1 -> 5 took %v", time.Since(start))
	if n := len(ps(t, e, "web")); n != 5 {
		t.Fatalf("%d replicas after scale web=5", n)
	}
	names := hostnames(t, e, "web")
	waitFor(t, 10*time.Second, "all replicas healthy", func() bool {
		for _, p := range ps(t, e, "web") {
			if p.Health != "healthy" {
				return false
			}
		}
		return true
	})

	counts := map[string]int{}
	for i := 0; i < 50; i++ {
		body, err := getReady(t, port)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		counts[names[strings.TrimSpace(body)]]++
	}
	t.Logf("50 requests over 5 replicas: %v", counts)
	if len(counts) != 5 {
		t.Errorf("reached %d replicas, want 5: %v", len(counts), counts)
	}
	for name, n := range counts {
		if n < 6 || n > 14 {
			t.Errorf("%s got %d of 50 requests; want 10 ± 40%%", name, n)
		}
	}

	// Scale to 2 while a client loops on the port: no request fails.
	var failures, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if body, err := get(t, port); err != nil || strings.TrimSpace(body) == "" {
				failures.Add(1)
			} else {
				served.Add(1)
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	e.MustRun("scale", "web=2")
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Errorf("%d of %d requests failed while scaling down", failures.Load(), failures.Load()+served.Load())
	}
	var left []string
	for _, p := range ps(t, e, "web") {
		left = append(left, p.Name)
	}
	if strings.Join(left, ",") != "scaled-web-1,scaled-web-2" {
		t.Errorf("after scale web=2: %v", left)
	}

	// A replica that turns unhealthy gets no more traffic.
	names = hostnames(t, e, "web")
	e.MustRun("exec", "-T", "--index", "2", "web", "rm", "/tmp/healthy")
	waitFor(t, 5*time.Second, "web-2 to turn unhealthy", func() bool {
		for _, p := range ps(t, e, "web") {
			if p.Name == "scaled-web-2" {
				return p.Health == "unhealthy"
			}
		}
		return false
	})
	for i := 0; i < 20; i++ {
		body, err := getReady(t, port)
		if err != nil {
			t.Fatal(err)
		}
		if names[strings.TrimSpace(body)] == "scaled-web-2" {
			t.Fatal("an unhealthy replica still gets traffic")
		}
	}
	e.MustRun("down", "-t", "1")
}

func TestUpScaleFlags(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: flags
services:
  a:
    image: busybox
    command: ["sleep", "3600"]
    init: true
  b:
    image: busybox
    command: ["sleep", "3600"]
    init: true
`)
	e.MustRun("up", "-d", "--scale", "a=2", "--scale", "b=3")
	if na, nb := len(ps(t, e, "a")), len(ps(t, e, "b")); na != 2 || nb != 3 {
		t.Errorf("--scale a=2 --scale b=3 gave %d and %d", na, nb)
	}
	// Scaling up reuses free numbers.
	e.MustRun("rm", "-s", "-f", "b")
	e.MustRun("scale", "b=2")
	var got []string
	for _, p := range ps(t, e, "b") {
		got = append(got, p.Name)
	}
	if strings.Join(got, ",") != "flags-b-1,flags-b-2" {
		t.Errorf("numbers after scaling up: %v", got)
	}
	e.MustRun("down", "-t", "1")
}

// TestRandomPortPerReplica: a container-only port (`- "80"`, the seed's
// scaling recipe) gives each replica its own random host port.
func TestRandomPortPerReplica(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: randports
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
    init: true
    ports: ["127.0.0.1::80"]
    deploy:
      replicas: 3
`)
	e.MustRun("up", "-d")
	names := hostnames(t, e, "web")
	seen := map[string]bool{}
	for _, idx := range []string{"1", "2", "3"} {
		hostport := strings.TrimSpace(e.MustRun("port", "--index", idx, "web", "80").Stdout)
		_, p, ok := strings.Cut(hostport, ":")
		port, err := strconv.Atoi(p)
		if !ok || err != nil || seen[p] {
			t.Fatalf("replica %s: port %q", idx, hostport)
		}
		seen[p] = true
		body, err := getReady(t, port)
		if err != nil {
			t.Fatal(err)
		}
		if want := "randports-web-" + idx; names[strings.TrimSpace(body)] != want {
			t.Errorf("port of replica %s answered from %s", idx, names[strings.TrimSpace(body)])
		}
	}
	e.MustRun("down", "-t", "1")
}
