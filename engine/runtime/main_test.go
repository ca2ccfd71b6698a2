package runtime

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// adoptHelperEnv makes the test binary create and start a container, print
// its ID and exit, leaving the container running without its parent.
const adoptHelperEnv = "BERTH_RUNTIME_TEST_ADOPT"

func TestMain(m *testing.M) {
	// libcontainer re-executes /proc/self/exe as "<exe> init" inside the
	// new namespaces, the same hook cmd/berth/main.go has.
	if len(os.Args) > 1 && os.Args[1] == "init" {
		Init()
	}
	if len(os.Args) > 1 && os.Args[1] == ReaperArg {
		os.Exit(RunReaper(os.Args[2:]))
	}
	if v := os.Getenv(adoptHelperEnv); v != "" {
		os.Exit(adoptHelper(v))
	}
	if v := os.Getenv(filterHelperEnv); v != "" {
		os.Exit(filterHelper(v))
	}
	code := m.Run()
	if reaperOnce.dir != "" {
		os.RemoveAll(reaperOnce.dir)
	}
	os.Exit(code)
}

// adoptHelper: v is "stateRoot|rootfs|cgroupParent|id".
func adoptHelper(v string) int {
	p := strings.Split(v, "|")
	c, _, err := Create(p[0], Spec{ID: p[3], Rootfs: p[1], CgroupParent: p[2], Args: []string{"sleep", "100"}, Hostname: "adopted"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := c.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = c.Destroy()
		return 1
	}
	fmt.Println(c.Pid())
	return 0
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// env is one test's sandbox: a busybox rootfs, a state root and a cgroup
// parent of its own, all checked and removed at cleanup.
type env struct {
	t            testing.TB
	base         string
	rootfs       string
	state        string
	cgroupParent string
	seq          int
}

func newEnv(t testing.TB) *env {
	t.Helper()
	requireRoot(t)
	base := t.TempDir()
	e := &env{
		t:            t,
		base:         base,
		rootfs:       filepath.Join(base, "rootfs"),
		state:        filepath.Join(base, "state"),
		cgroupParent: "/berth-test-" + randHex(4),
	}
	buildRootfs(t, e.rootfs)
	t.Cleanup(e.check)
	return e
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// id returns a container ID unique to this test.
func (e *env) id() string {
	e.seq++
	return fmt.Sprintf("t%s-%d", randHex(3), e.seq)
}

// spec returns a Spec for args with the sandbox filled in.
func (e *env) spec(args ...string) Spec {
	return Spec{
		ID:           e.id(),
		Rootfs:       e.rootfs,
		Args:         args,
		Hostname:     "box",
		CgroupParent: e.cgroupParent,
	}
}

// check fails the test if a mount under the sandbox or a container cgroup
// is left, then removes the cgroup parent in every hierarchy.
func (e *env) check() {
	t := e.t
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("mountinfo: %v", err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], e.base) {
			t.Errorf("leftover mount: %s", line)
		}
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + e.cgroupParent)
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, en := range entries {
			if en.IsDir() {
				t.Errorf("leftover cgroup %s/%s", d, en.Name())
			}
		}
		if err := os.Remove(d); err != nil {
			t.Errorf("remove cgroup parent: %v", err)
		}
	}
}

var busyboxApplets = []string{
	"sh", "sleep", "cat", "id", "hostname", "mount", "umount", "ls", "echo", "grep", "head",
	"tail", "dd", "yes", "tr", "wc", "touch", "true", "false", "env", "mkdir", "rm", "tty",
	"ps", "kill", "stat", "sysctl", "ulimit", "uname", "df", "mkfifo", "sed", "printf",
}

// buildRootfs makes a minimal image from Debian's static busybox.
func buildRootfs(t testing.TB, root string) {
	t.Helper()
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "mnt", "root", "home/app", "data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open("/bin/busybox")
	if err != nil {
		t.Skipf("busybox-static needed: %v", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(root, "bin/busybox"), os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// run creates, starts and waits for a container of s, returning its
// output (stdout and stderr together) and exit status, and destroys it.
func (e *env) run(s Spec) (string, ExitStatus) {
	t := e.t
	t.Helper()
	out, err := os.CreateTemp(e.base, "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	s.Stdio = Stdio{Stdout: out, Stderr: out}
	c := e.start(s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := c.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if err := c.Destroy(); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	data, _ := os.ReadFile(out.Name())
	return string(data), st
}

// start creates and starts s; the container is destroyed at cleanup.
func (e *env) start(s Spec) *Container {
	t := e.t
	t.Helper()
	c, warnings, err := Create(e.state, s)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	for _, w := range warnings {
		t.Logf("warning: %s", w)
	}
	t.Cleanup(func() {
		if err := c.Destroy(); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	if err := c.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	return c
}

// kv parses "key=value" lines.
func kv(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

var reaperOnce struct {
	sync.Once
	dir, path string
	err       error
}

// staticReaper builds testdata/reaper as a static binary: the test binary
// itself links libc dynamically and cannot run inside a busybox rootfs.
func staticReaper(t testing.TB) string {
	t.Helper()
	reaperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-reaper")
		if err != nil {
			reaperOnce.err = err
			return
		}
		reaperOnce.dir = dir
		reaperOnce.path = filepath.Join(dir, "berth-init")
		cmd := exec.Command("go", "build", "-o", reaperOnce.path, "./testdata/reaper")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			reaperOnce.err = fmt.Errorf("build reaper: %v\n%s", err, out)
		}
	})
	if reaperOnce.err != nil {
		t.Skip(reaperOnce.err)
	}
	return reaperOnce.path
}
