package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// TestComposeFlags: start --wait, up --pull, run --build and down --rmi
// do what compose's do; bad values get compose's errors.
func TestComposeFlags(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("app/Dockerfile", "FROM busybox:latest\nCOPY msg /msg\nCMD [\"sh\", \"-c\", \"exec sleep 3600\"]\n")
	e.WriteFile("app/msg", "v1\n")
	e.WriteFile("compose.yaml", `
name: flg
services:
  app:
    build: ./app
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      start_interval: 100ms
      start_period: 10s
  ghost:
    image: example.invalid/none:1
    profiles: [ghost]
`)
	if r := e.Run("--profile", "ghost", "up", "-d", "--pull", "never", "ghost"); r.Code == 0 || !strings.Contains(r.Stderr, "pull_policy is never") {
		t.Errorf("up --pull never: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if r := e.Run("up", "--pull", "sometimes"); r.Code == 0 || !strings.Contains(r.Stderr, `invalid --pull option "sometimes"`) {
		t.Errorf("up --pull sometimes: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if r := e.MustRun("--progress", "quiet", "up", "-d", "--quiet-pull", "-y", "app"); strings.Contains(r.Stderr, "Container") {
		t.Errorf("--progress quiet printed steps:\n%s", r.Stderr)
	}
	if r := e.MustRun("--progress", "json", "stop", "app"); !strings.HasPrefix(r.Stderr, "{") || !strings.Contains(r.Stderr, `"flg-app-1"`) {
		t.Errorf("--progress json printed:\n%s", r.Stderr)
	}
	e.MustRun("start", "--wait", "--wait-timeout", "60", "app")
	if out := e.MustRun("ps", "--format", "{{.Health}}", "app").Stdout; out != "healthy\n" {
		t.Errorf("after start --wait, health = %q", out)
	}

	e.WriteFile("app/msg", "v2\n")
	if r := e.MustRun("run", "--rm", "-T", "--build", "--quiet-build", "app", "cat", "/msg"); r.Stdout != "v2\n" {
		t.Errorf("run --build printed %q", r.Stdout)
	}

	if r := e.Run("down", "--rmi", "some"); r.Code == 0 || !strings.Contains(r.Stderr, `invalid value for --rmi: "some"`) {
		t.Errorf("down --rmi some: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if out := e.MustRun("image", "ls", "--format", "{{.Repository}}").Stdout; !strings.Contains(out, "flg-app") {
		t.Fatalf("no built image to remove:\n%s", out)
	}
	e.MustRun("down", "--rmi", "local")
	if out := e.MustRun("image", "ls", "--format", "{{.Repository}}").Stdout; strings.Contains(out, "flg-app") {
		t.Errorf("down --rmi local left the built image:\n%s", out)
	}
}

// TestPullFlags: pull --policy missing skips what the store has,
// --ignore-buildable skips services with a build, --include-deps adds the
// dependencies; exec shows -T as a switch.
func TestPullFlags(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("ctx/Dockerfile", "FROM busybox:latest\n")
	e.WriteFile("compose.yaml", `
name: pf
services:
  a:
    image: busybox:latest
    depends_on: [b]
  b:
    image: example.invalid/nothing:1
  built:
    image: example.invalid/built:1
    build: ./ctx
`)
	e.MustRun("pull", "--policy", "missing", "a")
	if r := e.Run("pull", "--policy", "missing", "--include-deps", "a"); r.Code == 0 || !strings.Contains(r.Stderr, `service "b"`) {
		t.Errorf("pull --include-deps a: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if r := e.Run("pull", "--policy", "missing", "built"); r.Code == 0 {
		t.Error("pull of an unreachable image succeeded")
	}
	e.MustRun("pull", "--policy", "missing", "--ignore-buildable", "a", "built")
	if r := e.Run("pull", "--policy", "sometimes"); r.Code == 0 || !strings.Contains(r.Stderr, `invalid pull policy "sometimes"`) {
		t.Errorf("pull --policy sometimes: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if out := e.MustRun("exec", "--help").Stdout; !strings.Contains(out, "-T, --no-TTY ") || strings.Contains(out, "--no-TTY            Disable pseudo-TTY allocation. By default 'berth exec' allocates a TTY. (default") {
		t.Errorf("exec help:\n%s", out)
	}
}

// TestDryRun: --dry-run says what up, stop, down, pull and build would do
// and changes nothing.
func TestDryRun(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("ctx/Dockerfile", "FROM busybox:latest\n")
	e.WriteFile("compose.yaml", `
name: dry
services:
  web:
    image: busybox:latest
    command: ["sleep", "3600"]
  tool:
    build: ./ctx
`)
	if r := e.MustRun("--dry-run", "up", "-d", "web"); !strings.Contains(r.Stderr, "DRY-RUN MODE -  Container dry-web-1  Started") {
		t.Errorf("dry-run up:\n%s", r.Stderr)
	}
	if out := e.MustRun("ps", "-a", "-q").Stdout; out != "" {
		t.Fatalf("dry-run up created containers: %q", out)
	}
	if r := e.MustRun("--dry-run", "build"); !strings.Contains(r.Stderr, "Service tool  Built") {
		t.Errorf("dry-run build:\n%s", r.Stderr)
	}
	if out := e.MustRun("image", "ls", "--format", "{{.Repository}}").Stdout; strings.Contains(out, "dry-tool") {
		t.Errorf("dry-run build built:\n%s", out)
	}
	e.MustRun("up", "-d", "web")
	if r := e.MustRun("--dry-run", "stop"); !strings.Contains(r.Stderr, "Container dry-web-1  Stopped") {
		t.Errorf("dry-run stop:\n%s", r.Stderr)
	}
	if r := e.MustRun("--dry-run", "down"); !strings.Contains(r.Stderr, "Network dry_default  Removed") {
		t.Errorf("dry-run down:\n%s", r.Stderr)
	}
	if out := e.MustRun("ps", "--format", "{{.State}}").Stdout; out != "running\n" {
		t.Errorf("after dry runs, ps = %q", out)
	}

	// events --until ends the stream; --since drops what came before.
	until := time.Now().Add(3 * time.Second).Format(time.RFC3339Nano)
	done := make(chan harness.Result, 1)
	go func() { done <- e.Run("events", "--since", "1s", "--until", until) }()
	time.Sleep(500 * time.Millisecond)
	e.MustRun("restart", "web")
	select {
	case r := <-done:
		if r.Code != 0 || !strings.Contains(r.Stdout, " container ") {
			t.Errorf("events --until: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
	case <-time.After(60 * time.Second):
		t.Error("events --until did not end")
	}
	if r := e.Run("events", "--since", "yesterday-ish"); r.Code == 0 || !strings.Contains(r.Stderr, "invalid --since") {
		t.Errorf("events --since bad: exit %d, stderr %q", r.Code, r.Stderr)
	}
	e.MustRun("down")
}

// TestCompatibilityNames: --compatibility names containers as compose v1
// did, <project>_<service>_<n>.
func TestCompatibilityNames(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: cmp
services:
  web:
    image: busybox:latest
    command: ["sleep", "3600"]
`)
	e.MustRun("--compatibility", "up", "-d", "--scale", "web=2")
	if out := e.MustRun("ps", "--format", "{{.Name}}").Stdout; out != "cmp_web_1\ncmp_web_2\n" {
		t.Errorf("ps names = %q", out)
	}
	e.MustRun("down")
}
