package e2e

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// failsCleanly checks the shape of every refusal: exit 1, nothing on
// stdout, one line on stderr that says want.
func failsCleanly(t *testing.T, r harness.Result, what, want string) {
	t.Helper()
	if r.Code != 1 || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, want) {
		t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1, no output and one line saying %q", what, r.Code, r.Stdout, r.Stderr, want)
	}
}

// entries lists a directory's names, or nil.
func entries(dir string) []string {
	des, _ := os.ReadDir(dir)
	var out []string
	for _, d := range des {
		out = append(out, d.Name())
	}
	return out
}

// TestProjectNameTraversal: -p and COMPOSE_PROJECT_NAME name directories
// under the run root, so commands that work without a compose file must
// refuse a name that is not compose's before they touch anything; volume
// and network names are held to docker's rule.
func TestProjectNameTraversal(t *testing.T) {
	e := harness.New(t)
	base := filepath.Dir(e.RunRoot)
	// Where -p ../../../var/tmp/x leads from the run root's projects.
	outside := filepath.Join(filepath.Dir(base), "var")
	_, err := os.Stat(outside)
	existed := err == nil
	for _, name := range []string{"../../x", "a/b", "../../../var/tmp/x", "Upper", "x\ny"} {
		for _, cmd := range [][]string{{"down", "-v"}, {"ps"}, {"logs"}, {"stop"}, {"exec", "-T", "web", "true"}} {
			failsCleanly(t, e.Run(append([]string{"-p", name}, cmd...)...), "-p "+name+" "+cmd[0], "project name")
		}
	}
	for _, name := range []string{"../../x", "a/b", ".."} {
		failsCleanly(t, e.Run("volume", "create", name), "volume create "+name, name)
		failsCleanly(t, e.Run("network", "create", name), "network create "+name, name)
	}
	e.Environ = []string{"COMPOSE_PROJECT_NAME=../../x"}
	failsCleanly(t, e.Run("down", "-v"), "COMPOSE_PROJECT_NAME=../../x down -v", "project name")
	e.Environ = nil

	if got := entries(base); strings.Join(got, " ") != "root run work" {
		t.Errorf("the test's base directory holds %v, want only root, run and work", got)
	}
	if got := entries(filepath.Join(e.RunRoot, "projects")); len(got) != 0 {
		t.Errorf("the run root's projects hold %v", got)
	}
	if _, err := os.Stat(outside); err == nil && !existed {
		t.Errorf("%s was created", outside)
		os.RemoveAll(outside)
	}
}

// TestBadComposeInput: files that never end, compose-go panics and values
// docker refuses all end as one line of error before anything is created.
func TestBadComposeInput(t *testing.T) {
	e := harness.New(t)
	tests := []struct {
		name, compose, want string
	}{
		{"include a device", "include: [/dev/zero]\nservices:\n  web:\n    image: busybox\n", "/dev/zero: not a regular file"},
		{"env_file a device", "services:\n  web:\n    image: busybox\n    env_file: /dev/zero\n", "compose.yaml:4: services.web.env_file: /dev/zero: not a regular file"},
		{"compose-go panic", "services:\n  web:\n    image: busybox\n    configs: [{source: c, target: 1}]\nconfigs:\n  c:\n    content: x\n", "compose.yaml: the compose loader failed"},
		{"stop_signal", "services:\n  web:\n    image: busybox\n    stop_signal: SIGFOO\n    volumes: [data:/data]\nvolumes:\n  data: {}\n", "compose.yaml:4: services.web.stop_signal"},
		{"restart", "services:\n  web:\n    image: busybox\n    restart: sometimes\n", "compose.yaml:4: services.web.restart"},
		{"mem_limit", "services:\n  web:\n    image: busybox\n    mem_limit: -5\n", "compose.yaml:4: services.web.mem_limit"},
		{"dns", "services:\n  web:\n    image: busybox\n    dns: not-an-ip\n", "compose.yaml:4: services.web.dns"},
		{"port range", "services:\n  web:\n    image: busybox\n    ports: [\"1-65535:1-65535\"]\n", "compose.yaml:4: services.web.ports"},
		{"hostname newline", "services:\n  web:\n    image: busybox\n    hostname: \"a\\n10.0.0.1 evil\"\n", "compose.yaml:4: services.web.hostname"},
	}
	for _, tt := range tests {
		e.WriteFile("compose.yaml", tt.compose)
		for _, cmd := range [][]string{{"config"}, {"up", "-d"}} {
			done := make(chan harness.Result, 1)
			go func() { done <- e.Run(cmd...) }()
			select {
			case r := <-done:
				failsCleanly(t, r, tt.name+": "+cmd[0], tt.want)
				if strings.Contains(r.Stderr, "goroutine") {
					t.Errorf("%s: a stack trace: %s", tt.name, r.Stderr)
				}
			case <-time.After(2 * time.Minute):
				t.Fatalf("%s: berth %s did not end", tt.name, cmd[0])
			}
		}
	}
	for _, dir := range []string{filepath.Join(e.Root, "containers"), filepath.Join(e.Root, "volumes")} {
		if got := entries(dir); len(got) != 0 {
			t.Errorf("%s holds %v after refused loads", dir, got)
		}
	}
}

// TestImageBadReferences: image import and tag take references by docker's
// grammar only.
func TestImageBadReferences(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("hi\n"))
	_ = tw.Close()
	e.WriteFile("rootfs.tar", buf.String())

	for _, ref := range []string{"../../x", "/etc/passwd", "a//b", "UPPER/case", "a\nb"} {
		failsCleanly(t, e.Run("image", "import", "rootfs.tar", ref), "import as "+ref, "invalid reference format")
		failsCleanly(t, e.Run("image", "tag", "busybox", ref), "tag as "+ref, "invalid reference format")
	}
	e.MustRun("image", "import", "rootfs.tar", "localhost:5000/team/rootfs:1")
	e.MustRun("image", "tag", "busybox", "mybox:2")
	out := e.MustRun("image", "ls").Stdout
	for _, want := range []string{"localhost:5000/team/rootfs", "mybox"} {
		if !strings.Contains(out, want) {
			t.Errorf("image ls does not list %s:\n%s", want, out)
		}
	}
}

// TestExecDetach: exec -d returns at once and the command runs on in the
// container, as in docker compose. The service publishes "0:80".
func TestExecDetach(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: detach
services:
  app:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    ports: ["0:80"]
`)
	e.MustRun("up", "-d")
	// Host port 0 is any free port, as in docker: config and up agree.
	if got := strings.TrimSpace(e.MustRun("port", "app", "80").Stdout); got == "" || strings.HasSuffix(got, ":0") {
		t.Errorf("port app 80 with 0:80 published: %q", got)
	}
	start := time.Now()
	r := e.MustRun("exec", "-d", "app", "sh", "-c", "echo started > /tmp/s; sleep 60; echo done > /tmp/s")
	// Without -d this takes a minute; the margin is wide for a busy machine.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("exec -d took %s: it did not detach", d)
	}
	if r.Stdout != "" {
		t.Errorf("exec -d printed %q", r.Stdout)
	}
	waitFor(t, 10*time.Second, "the detached command to run", func() bool {
		return e.Run("exec", "-T", "app", "cat", "/tmp/s").Stdout == "started\n"
	})
	if out := e.MustRun("exec", "-T", "app", "ps", "-o", "args").Stdout; !strings.Contains(out, "sleep 60") {
		t.Errorf("the detached command is not running after exec -d returned:\n%s", out)
	}
	e.MustRun("down", "-t", "1")
}
