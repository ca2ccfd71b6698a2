package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/tests/harness"
)

// berthCmd prepares a berth command of e whose stdio the test sets.
func berthCmd(ctx context.Context, e *harness.Env, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.Bin, args...)
	cmd.Dir = e.Dir
	cmd.Env = append(os.Environ(), "BERTH_ROOT="+e.Root, "BERTH_RUN_ROOT="+e.RunRoot)
	return cmd
}

// procStatusKB reads a field of /proc/PID/status in kB (VmRSS, VmHWM).
func procStatusKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// logFiles returns the log files of the container whose ID starts the
// directory name, with their sizes.
func logFiles(t *testing.T, e *harness.Env) map[string]int64 {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(e.Root, "containers", "*", "*-json.log*"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(m)] = fi.Size()
	}
	return out
}

// TestTTYLogFlood: a tty container that writes without a newline as fast
// as it can costs the supervisor bounded memory, its log keeps to its cap,
// and `logs` reads it back with bounded memory.
func TestTTYLogFlood(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: flood
services:
  flood:
    image: busybox
    command: ["sh", "-c", "yes AAAA | tr -d '\n'"]
    tty: true
    logging:
      options:
        max-size: 1m
        max-file: "2"
`)
	e.MustRun("up", "-d")
	pids := e.SupervisorPIDs()
	if len(pids) != 1 {
		t.Fatalf("supervisors: %v", pids)
	}
	sup := pids[0]
	peakRSS := 0
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		peakRSS = max(peakRSS, procStatusKB(t, sup, "VmRSS"))
	}
	hwm := procStatusKB(t, sup, "VmHWM")
	e.MustRun("stop", "-t", "1")
	t.Logf("supervisor during the flood: VmRSS up to %d kB, VmHWM %d kB", peakRSS, hwm)
	// About 21 MB measured; an unbounded reader passed 60 MB within the
	// same 5 s on a busy machine, and 600 MB on an idle one.
	if hwm > 64*1024 {
		t.Errorf("supervisor VmHWM %d kB: a tty without newlines must not grow it past 64 MB", hwm)
	}
	files := logFiles(t, e)
	var total int64
	for name, size := range files {
		total += size
		if size > 1000*1000 {
			t.Errorf("%s: %d bytes, past max-size 1m", name, size)
		}
	}
	if len(files) > 2 || total < 1000*1000 {
		t.Errorf("log files %v: want 2 files of the flood", files)
	}

	var out bytes.Buffer
	cmd := berthCmd(context.Background(), e, "logs", "--no-log-prefix", "flood")
	cmd.Stdout = &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("logs: %v", err)
	}
	maxRSS := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // kB
	t.Logf("logs: %d bytes in %v, max RSS %d kB", out.Len(), time.Since(start), maxRSS)
	if maxRSS > 100*1024 {
		t.Errorf("logs took %d kB of memory", maxRSS)
	}
	if body := bytes.TrimRight(out.Bytes(), "\n"); len(body) < 500*1000 || len(bytes.Trim(body, "A")) != 0 {
		t.Errorf("logs printed %d bytes, not all the flood's: %.80q", out.Len(), out.String())
	}
	e.MustRun("down", "-t", "1")
}

// TestLongLineSplit: a line longer than 16 KiB is stored as partial
// entries of 16 KiB, as Docker's json-file driver does, and `logs` prints
// it back whole.
func TestLongLineSplit(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: longline
services:
  app:
    image: busybox
    command: ["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' B; echo; echo after; exec sleep 3600"]
    init: true
`)
	e.MustRun("up", "-d")
	var files map[string]int64
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if out := e.MustRun("logs", "--no-log-prefix", "app").Stdout; strings.Contains(out, "after") {
			break
		}
	}
	files = logFiles(t, e)
	if len(files) != 1 {
		t.Fatalf("log files %v", files)
	}
	var path string
	for name := range files {
		matches, _ := filepath.Glob(filepath.Join(e.Root, "containers", "*", name))
		path = matches[0]
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Log, Stream string
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var en entry
		if err := json.Unmarshal([]byte(l), &en); err != nil {
			t.Fatalf("entry %q: %v", l, err)
		}
		got = append(got, fmt.Sprintf("%d:%v", len(strings.TrimSuffix(en.Log, "\n")), strings.HasSuffix(en.Log, "\n")))
	}
	if want := []string{"16384:false", "16384:false", "7232:true", "5:true"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("entries (length:ends the line) %v, want %v", got, want)
	}
	long := strings.Repeat("B", 40000)
	if out := e.MustRun("logs", "--no-log-prefix", "app").Stdout; out != long+"\nafter\n" {
		t.Errorf("logs --no-log-prefix: %d bytes, want the line whole", len(out))
	}
	if out := e.MustRun("logs", "app").Stdout; out != "app-1  | "+long+"\napp-1  | after\n" {
		t.Errorf("logs: %d bytes %.40q, want the line whole after one prefix", len(out), out)
	}
	if out := e.MustRun("logs", "--tail", "1", "app").Stdout; out != "app-1  | after\n" {
		t.Errorf("logs --tail 1: %q", out)
	}
	e.MustRun("down", "-t", "1")
}

const sleeper = `
name: streams
services:
  app:
    image: busybox
    command: ["sleep", "3600"]
    init: true
`

// TestExecStdio: exec relays stdin to its end, keeps stdout and stderr
// apart, returns the command's exit code, and does not wait for a process
// the command left behind.
func TestExecStdio(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", sleeper)
	e.MustRun("up", "-d")

	if r := e.RunInput("hi\n", "exec", "-T", "app", "cat"); r.Code != 0 || r.Stdout != "hi\n" {
		t.Errorf("exec cat with stdin: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	big := strings.Repeat("0123456789abcdef", 64*1024) // 1 MiB, many frames
	if r := e.RunInput(big, "exec", "-T", "app", "sh", "-c", "cat | wc -c"); strings.TrimSpace(r.Stdout) != strconv.Itoa(len(big)) {
		t.Errorf("1 MiB through stdin: %q", r.Stdout)
	}
	if r := e.Run("exec", "-T", "app", "sh", "-c", "echo out; echo err >&2; exit 7"); r.Code != 7 || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Errorf("exit code and streams: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if r := e.Run("exec", "-T", "app", "no-such-command"); r.Code != 127 || !strings.Contains(r.Stderr, "executable file not found") {
		t.Errorf("missing command: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if r := e.Run("exec", "-T", "app", "sh", "-c", "kill -9 $$"); r.Code != 137 {
		t.Errorf("killed command: exit %d", r.Code)
	}
	start := time.Now()
	if r := e.Run("exec", "-T", "app", "sh", "-c", "sleep 30 & echo left"); r.Code != 0 || r.Stdout != "left\n" {
		t.Errorf("exec leaving a process: exit %d, stdout %q", r.Code, r.Stdout)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("exec waited %v for the process its command left behind", d)
	}
	e.MustRun("down", "-t", "1")
}

// TestExecHostFiles: a command run by exec with the CLI's stdin and stdout
// redirected from and to host files can neither write them through
// /proc/self/fd nor change their mode or owner.
func TestExecHostFiles(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", sleeper)
	e.MustRun("up", "-d")

	dir := t.TempDir()
	inPath, outPath := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.WriteFile(inPath, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(inPath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := berthCmd(context.Background(), e, "exec", "-T", "app", "sh", "-c",
		"echo X > /proc/self/fd/0; chmod 4777 /proc/self/fd/0 /proc/self/fd/1; chown 1234:1234 /proc/self/fd/0 /proc/self/fd/1; readlink /proc/self/fd/0 /proc/self/fd/1 >&2; echo ran")
	cmd.Stdin, cmd.Stdout = in, out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Logf("exec: %v, stderr %q", err, stderr.String())
	}
	for _, f := range []struct {
		path    string
		content string
		mode    os.FileMode
	}{{inPath, "secret\n", 0o600}, {outPath, "ran\n", 0o644}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != f.mode || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: mode %v owner %d:%d, want %v root:root", f.path, fi.Mode(), st.Uid, st.Gid, f.mode)
		}
		if b, _ := os.ReadFile(f.path); string(b) != f.content {
			t.Errorf("%s holds %q, want %q", f.path, b, f.content)
		}
	}
	e.MustRun("down", "-t", "1")
}

// TestExecDescriptorTakeover: a process already running in the container
// that opens a later exec's stdin and stdout through /proc cannot write
// into the CLI's files once the exec has ended.
func TestExecDescriptorTakeover(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	// The thief waits for the victim's PID, opens its stdin and stdout for
	// writing, waits until it has exited and the CLI has returned, writes,
	// and says it did ($$ is compose's escape of $).
	e.WriteFile("compose.yaml", `
name: takeover
services:
  app:
    image: busybox
    init: true
    command:
      - sh
      - -c
      - |
        while [ ! -s /tmp/victim.pid ]; do sleep 0.05; done
        pid=$$(cat /tmp/victim.pid)
        thief() { while [ -e /proc/$$pid ]; do sleep 0.05; done; sleep 1; (echo PWNED >&3); (echo PWNED >&4); }
        thief 3>/proc/$$pid/fd/1 4>/proc/$$pid/fd/0
        touch /tmp/thief.done
        exec sleep 3600
`)
	e.MustRun("up", "-d")
	dir := t.TempDir()
	inPath, outPath := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.WriteFile(inPath, []byte("input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(inPath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := berthCmd(context.Background(), e, "exec", "-T", "app", "sh", "-c", "echo $$ > /tmp/victim.pid; sleep 2; echo done")
	cmd.Stdin, cmd.Stdout = in, out
	if err := cmd.Run(); err != nil {
		t.Fatalf("exec: %v", err)
	}
	done := false
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end) && !done; time.Sleep(200 * time.Millisecond) {
		done = e.Run("exec", "-T", "app", "test", "-e", "/tmp/thief.done").Code == 0
	}
	if !done {
		t.Fatal("the thief never finished")
	}
	if b, _ := os.ReadFile(outPath); string(b) != "done\n" {
		t.Errorf("the exec's output file holds %q, want only the exec's own output", b)
	}
	if b, _ := os.ReadFile(inPath); string(b) != "input\n" {
		t.Errorf("the exec's input file holds %q", b)
	}
	if t.Failed() {
		t.Logf("the container's log: %q", e.Run("logs", "--no-log-prefix", "app").Stdout)
	}
	e.MustRun("down", "-t", "1")
}

// openPTY returns a new pseudo-terminal's master and slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestExecTerminal: on a terminal, exec gets a pseudo-terminal of the
// supervisor's with the CLI's window size; Ctrl-C reaches the command; a
// process the command left behind on the terminal does not keep exec
// from returning.
func TestExecTerminal(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", sleeper)
	e.MustRun("up", "-d")

	run := func(input func(master *os.File, seen func() string), args ...string) (string, int) {
		t.Helper()
		return onPTY(t, e, input, append([]string{"exec"}, args...)...)
	}

	out, code := run(nil, "app", "sh", "-c", "stty size; tty")
	if code != 0 || !strings.Contains(out, "33 101") || !strings.Contains(out, "/dev/pts/") {
		t.Errorf("exec on a terminal: exit %d, output %q", code, out)
	}

	waitFor := func(seen func() string, s string) {
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if strings.Contains(seen(), s) {
				return
			}
		}
		t.Errorf("%q never came: %q", s, seen())
	}
	out, code = run(func(master *os.File, seen func() string) {
		waitFor(seen, "ready")
		master.Write([]byte{3}) // Ctrl-C
	}, "app", "sh", "-c", `trap "echo interrupted; exit 3" INT; echo ready; while :; do sleep 0.1; done`)
	if code != 3 || !strings.Contains(out, "interrupted") {
		t.Errorf("Ctrl-C: exit %d, output %q", code, out)
	}

	// A reader left behind gets neither the terminal nor what is typed
	// on it after exec returned.
	start := time.Now()
	out, code = run(nil, "app", "sh", "-c", "trap '' HUP; exec 3<&0; cat <&3 > /tmp/typed & echo left")
	if code != 0 || !strings.Contains(out, "left") {
		t.Errorf("exec leaving a reader of its terminal: exit %d, output %q", code, out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("exec waited %v for the reader it left behind", d)
	}
	master, slave := openPTY(t)
	cmd := berthCmd(context.Background(), e, "exec", "-T", "app", "sh", "-c", "exec 3<&0; cat <&3 > /tmp/typed-T & echo left")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Run(); err != nil {
		t.Fatalf("exec -T on a terminal: %v", err)
	}
	if _, err := master.Write([]byte("typed after exec returned\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	for _, f := range []string{"/tmp/typed", "/tmp/typed-T"} {
		if out := e.Run("exec", "-T", "app", "cat", f).Stdout; strings.Contains(out, "typed") {
			t.Errorf("%s: a process left behind read %q from the user's terminal", f, out)
		}
	}
	e.MustRun("down", "-t", "1")
}

// TestNoHostDevNull checks that neither a container's init nor an exec
// given no input gets the host's /dev/null as stdin: a root process in the
// container could chmod it through /proc/self/fd. The test only looks
// (readlink), so that a failure changes nothing on the host.
func TestNoHostDevNull(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", sleeper)
	e.MustRun("up", "-d")
	out := e.MustRun("exec", "-T", "app", "sh", "-c", "readlink /proc/1/fd/0; readlink /proc/self/fd/0").Stdout
	links := strings.Fields(out)
	if len(links) != 2 {
		t.Fatalf("readlink printed %q", out)
	}
	for _, l := range links {
		if !strings.HasPrefix(l, "pipe:") {
			t.Errorf("stdin is %q, want a pipe of berth's", l)
		}
	}
	e.MustRun("down", "-t", "1")
}
