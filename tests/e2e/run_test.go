package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/tests/harness"
)

const runProject = `
services:
  app:
    image: busybox:latest
    command: ["sleep", "3600"]
    ports: ["18080:80"]
    volumes: ["shared:/shared"]
    depends_on:
      db:
        condition: service_healthy
  db:
    image: busybox:latest
    command: ["sh", "-c", "sleep 2; touch /shared/ready; sleep 3600"]
    init: true
    volumes: ["shared:/shared"]
    healthcheck:
      test: ["CMD", "test", "-f", "/shared/ready"]
      interval: 1s
      start_period: 30s
      start_interval: 200ms
volumes:
  shared:
`

// records reads the container records berth keeps on disk.
func records(t *testing.T, e *harness.Env) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(e.Root, "containers", "*", "record.json"))
	var out []map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestRunOneOff: run waits for a service_healthy dependency, returns the
// command's exit code, relays stdin to its end, publishes no port, and
// with --rm leaves nothing behind; the service itself is not started.
func TestRunOneOff(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", runProject)

	// The dependency writes /shared/ready 2 s after it starts and is
	// healthy only then: the one-off sees the file only if run waited.
	r := e.Run("run", "--rm", "-T", "app", "sh", "-c", "test -f /shared/ready && echo waited; echo err >&2; exit 3")
	if r.Code != 3 || r.Stdout != "waited\n" || !strings.Contains(r.Stderr, "err") {
		t.Fatalf("run --rm: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	for _, rec := range records(t, e) {
		if rec["service"] != "db" {
			t.Errorf("left behind: %v (%v)", rec["name"], rec["service"])
		}
	}
	if r := e.RunInput("hello\nworld\n", "run", "--rm", "-T", "app", "sh", "-c", "cat; echo eof"); r.Code != 0 || r.Stdout != "hello\nworld\neof\n" {
		t.Errorf("run -T with stdin: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// Ports are not published without -P / -p, so 18080 is free.
	r = e.Run("run", "--rm", "-T", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", "-l", "x=y", "--entrypoint", "sh -c", "app", `echo "$FOO $(pwd) $(id -un)"`)
	if r.Code != 0 || r.Stdout != "bar /tmp nobody\n" {
		t.Errorf("run with overrides: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// A service of a profile that is not active runs when named.
	e.WriteFile("compose.override.yaml", `
services:
  tool:
    image: busybox:latest
    profiles: [tools]
    networks: [side]
    command: ["echo", "tool ran"]
networks:
  side: {}
`)
	if r := e.Run("run", "--rm", "-T", "tool"); r.Code != 0 || r.Stdout != "tool ran\n" {
		t.Errorf("run of a profiled service: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// And up runs it when named, as compose does.
	if r := e.Run("up", "tool"); r.Code != 0 || !strings.Contains(r.Stdout, "tool ran") {
		t.Errorf("up of a profiled service: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	e.MustRun("--profile", "tools", "down", "-t", "1")
	os.Remove(filepath.Join(e.Dir, "compose.override.yaml"))
	if r := e.Run("run", "--rm", "-T", "--no-deps", "app", "no-such-command"); r.Code != 127 {
		t.Errorf("missing command: exit %d, stderr %q", r.Code, r.Stderr)
	}
	e.MustRun("down", "-v", "-t", "1")
}

// TestRunDetached: run -d prints the one-off's name, which carries
// compose's one-off labels; the one-off is not a replica of its service
// (up still makes one) and down removes it.
func TestRunDetached(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", sleeper)
	r := e.MustRun("run", "-d", "app")
	name := strings.TrimSpace(r.Stdout)
	if !regexp.MustCompile(`^streams-app-run-[0-9a-f]{12}$`).MatchString(name) {
		t.Fatalf("run -d printed %q", r.Stdout)
	}
	var found map[string]any
	for _, rec := range records(t, e) {
		if rec["name"] == name {
			found = rec
		}
	}
	if found == nil {
		t.Fatalf("no record for %s", name)
	}
	labels, _ := found["labels"].(map[string]any)
	if labels["com.docker.compose.oneoff"] != "True" || labels["com.docker.compose.service"] != "app" {
		t.Errorf("one-off labels: %v", labels)
	}
	e.MustRun("up", "-d")
	ps := e.MustRun("ps", "-a")
	if !strings.Contains(ps.Stdout, "streams-app-1") || !strings.Contains(ps.Stdout, name) {
		t.Errorf("ps: %q", ps.Stdout)
	}
	e.MustRun("down", "-t", "1")
	if recs := records(t, e); len(recs) != 0 {
		t.Errorf("down left %d containers", len(recs))
	}
}

// TestRunTerminal: run -it through a real terminal gets a terminal of the
// CLI's size, and Ctrl-C reaches the command.
func TestRunTerminal(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", sleeper)

	run := func(input func(master *os.File, seen func() string), args ...string) (string, int) {
		t.Helper()
		return onPTY(t, e, input, append([]string{"run", "--rm"}, args...)...)
	}
	waitFor := func(seen func() string, s string) {
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if strings.Contains(seen(), s) {
				return
			}
		}
		t.Errorf("%q never came: %q", s, seen())
	}

	// The size is set right after the start: the command reads it once
	// it was told to go on.
	out, code := run(func(master *os.File, seen func() string) {
		waitFor(seen, "go?")
		master.Write([]byte("yes\r"))
	}, "app", "sh", "-c", "printf 'go?'; read x; stty size; tty; exit 4")
	if code != 4 || !strings.Contains(out, "33 101") || !strings.Contains(out, "/dev/pts/") {
		t.Errorf("run on a terminal: exit %d, output %q", code, out)
	}
	out, code = run(func(master *os.File, seen func() string) {
		waitFor(seen, "ready")
		master.Write([]byte{3}) // Ctrl-C
	}, "app", "sh", "-c", `trap "echo interrupted; exit 3" INT; echo ready; while :; do sleep 0.1; done`)
	if code != 3 || !strings.Contains(out, "interrupted") {
		t.Errorf("Ctrl-C: exit %d, output %q", code, out)
	}
	// Output on a terminal asks for one; input that is not a terminal
	// cannot feed it, as with compose; without input it is fine.
	onOutputTerminal := func(args ...string) (string, int) {
		t.Helper()
		master, slave := openPTY(t)
		defer master.Close()
		cmd := berthCmd(context.Background(), e, args...)
		cmd.Stdin = strings.NewReader("")
		cmd.Stdout, cmd.Stderr = slave, slave
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		slave.Close()
		var buf bytes.Buffer
		done := make(chan struct{})
		go func() { io.Copy(&buf, master); close(done) }()
		err := cmd.Wait()
		<-done
		if ee, ok := err.(*exec.ExitError); ok {
			return buf.String(), ee.ExitCode()
		}
		return buf.String(), 0
	}
	if out, code := onOutputTerminal("run", "--rm", "app", "true"); code == 0 || !strings.Contains(out, "the input device is not a TTY") {
		t.Errorf("run with piped input on a terminal: exit %d, %q", code, out)
	}
	if out, code := onOutputTerminal("run", "--rm", "-i=false", "app", "tty"); code != 0 || !strings.Contains(out, "/dev/pts/") {
		t.Errorf("run -i=false on a terminal: exit %d, %q", code, out)
	}
	if recs := records(t, e); len(recs) != 0 {
		t.Errorf("run --rm left %d containers", len(recs))
	}
	// The network stays until down, as with compose.
	e.MustRun("down")
}

// TestRunCLIGoesAway: the CLI of an attached run killed leaves the
// one-off running (the supervisor owns it), and --rm still removes it
// once it exits; without a terminal, a signal to the CLI reaches the
// command.
func TestRunCLIGoesAway(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", sleeper)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cmd := berthCmd(ctx, e, "run", "--rm", "-T", "app", "sh", "-c", "echo ready; sleep 2")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	if _, err := io.ReadFull(out, b); err != nil || string(b) != "ready\n" {
		t.Fatalf("run: %q %v", b, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if n := len(records(t, e)); n != 1 {
		t.Errorf("after the CLI was killed: %d containers, want the one-off", n)
	}
	for end := time.Now().Add(30 * time.Second); len(records(t, e)) > 0 && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
	}
	if n := len(records(t, e)); n != 0 {
		t.Errorf("run --rm left %d containers after its command ended", n)
	}

	cmd = berthCmd(ctx, e, "run", "--rm", "-T", "app", "sh", "-c", `trap "echo got-term; exit 4" TERM; echo ready; while :; do sleep 0.1; done`)
	var buf bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(&buf, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(pr, b); err != nil || string(b) != "ready\n" {
		t.Fatalf("run: %q %v", b, err)
	}
	go io.Copy(io.Discard, pr)
	cmd.Process.Signal(unix.SIGTERM)
	err = cmd.Wait()
	pw.Close()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 || !strings.Contains(buf.String(), "got-term") {
		t.Errorf("SIGTERM to run: %v, output %q", err, buf.String())
	}
	e.MustRun("down")
}

// TestRunPortsAndAliases: a one-off publishes the service's ports only
// with -P and its own with -p, each in front of it alone; it answers in
// DNS to the service's name only with --use-aliases.
func TestRunPortsAndAliases(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: runports
services:
  web:
    image: busybox
    command: `+webCommand+`
    init: true
    ports: ["18090:80"]
  client:
    image: busybox
    command: ["sleep", "3600"]
    init: true
`)
	e.MustRun("up", "-d", "client")
	fetch := func(port int) string {
		t.Helper()
		var body string
		var err error
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if body, err = get(t, port); err == nil {
				return strings.TrimSpace(body)
			}
		}
		t.Errorf("port %d: %v", port, err)
		return ""
	}
	plain := strings.TrimSpace(e.MustRun("run", "-d", "web").Stdout)
	if _, err := get(t, 18090); err == nil {
		t.Errorf("run without -P published the service's port")
	}
	if r := e.Run("exec", "-T", "client", "nslookup", "web"); r.Code == 0 {
		t.Errorf("a one-off answers to the service's name without --use-aliases: %s", r.Stdout)
	}
	if r := e.Run("exec", "-T", "client", "nslookup", plain); r.Code != 0 {
		t.Errorf("the one-off's own name does not resolve: %s %s", r.Stdout, r.Stderr)
	}

	withP := strings.TrimSpace(e.MustRun("run", "-d", "--service-ports", "--use-aliases", "web").Stdout)
	own := strings.TrimSpace(e.MustRun("run", "-d", "-p", "18091:80", "web").Stdout)
	host := func(name string) string {
		return strings.TrimSpace(e.MustRun("exec", "-T", "client", "sh", "-c", "wget -qO- http://"+name+"/").Stdout)
	}
	if got, want := fetch(18090), host(withP); got != want || got == "" {
		t.Errorf("-P: port 18090 answered %q, want the one-off's %q", got, want)
	}
	if got, want := fetch(18091), host(own); got != want || got == "" {
		t.Errorf("-p: port 18091 answered %q, want the one-off's %q", got, want)
	}
	if r := e.Run("exec", "-T", "client", "nslookup", "web"); r.Code != 0 {
		t.Errorf("--use-aliases: the service's name does not resolve: %s %s", r.Stdout, r.Stderr)
	}
	e.MustRun("down", "-t", "1")
	if _, err := get(t, 18090); err == nil {
		t.Errorf("port 18090 still open after down")
	}
}

// onPTY runs berth with args on a new terminal of 33 rows and 101
// columns; input types on it while seen returns what was printed so far.
func onPTY(t *testing.T, e *harness.Env, input func(master *os.File, seen func() string), args ...string) (string, int) {
	t.Helper()
	master, slave := openPTY(t)
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 101}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := berthCmd(ctx, e, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var buf bytes.Buffer
	mu := make(chan struct{}, 1)
	mu <- struct{}{}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			<-mu
			buf.Write(b[:n])
			mu <- struct{}{}
			if err != nil {
				return
			}
		}
	}()
	seen := func() string {
		<-mu
		defer func() { mu <- struct{}{} }()
		return buf.String()
	}
	if input != nil {
		input(master, seen)
	}
	err := cmd.Wait()
	master.Close()
	<-copied
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("berth %v: %v", args, err)
	}
	return seen(), code
}

// waitSeen waits until s was printed.
func waitSeen(t *testing.T, seen func() string, s string) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(seen(), s) {
			return
		}
	}
	t.Errorf("%q never came: %q", s, seen())
}
