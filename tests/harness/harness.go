// Package harness runs the built berth binary in end-to-end tests, each test
// with its own roots, and checks that nothing berth made is left behind.
package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthrun/berth/supervisor"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of the berth binary under test: $BERTH_BIN (set by
// `make test`), or one built once for this test process.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BERTH_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "berth")
		_, file, _, _ := runtime.Caller(0)
		module := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-tags", "seccomp netgo osusergo",
			"-ldflags", "-extldflags -static", "-o", binPath, "./cmd/berth")
		cmd.Dir = module
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New(string(out))
			return
		}
		engine := exec.Command("go", "build", "-tags", "seccomp netgo osusergo",
			"-ldflags", "-extldflags -static", "-o", filepath.Join(dir, "berth-engine"), "./cmd/berth-engine")
		engine.Dir = module
		if out, err := engine.CombinedOutput(); err != nil {
			buildErr = errors.New(string(out))
			return
		}
		cc := exec.Command("gcc", "-static", "-Os", "-o", filepath.Join(dir, "berth-init"), "engine/runtime/cinit/berth-init.c")
		cc.Dir = module
		if out, err := cc.CombinedOutput(); err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building berth: %v", buildErr)
	}
	return binPath
}

// removeBuiltBinary removes the binary Binary built, at the end of the run.
func removeBuiltBinary() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

// Env is one test's berth: its own persistent and runtime roots and a
// working directory.
type Env struct {
	t       testing.TB
	Bin     string
	Root    string
	RunRoot string
	Dir     string   // working directory of every command
	Environ []string // extra KEY=VALUE for every command
}

// New returns an Env with fresh roots; at the end of the test it checks
// that nothing is left of them.
func New(t testing.TB) *Env {
	t.Helper()
	// A short base directory: the supervisor's unix socket lives under it,
	// and socket paths are limited to 108 bytes.
	base, err := os.MkdirTemp("", "berth-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	e := &Env{
		t:       t,
		Bin:     Binary(t),
		Root:    filepath.Join(base, "root"),
		RunRoot: filepath.Join(base, "run"),
		Dir:     filepath.Join(base, "work"),
	}
	for _, d := range []string{e.Root, e.RunRoot, e.Dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		e.downAll()
		e.CheckNoLeaks()
	})
	return e
}

// Result is what one berth command did.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs berth with args and returns its output and exit code.
func (e *Env) Run(args ...string) Result {
	return e.RunInput("", args...)
}

// RunEnv runs berth with extra KEY=VALUE variables for this command only,
// such as the fault hook's BERTH_FAULT.
func (e *Env) RunEnv(env []string, args ...string) Result {
	e.t.Helper()
	cmd := e.Command(args...)
	cmd.Env = append(cmd.Env, env...)
	return e.run(cmd, args)
}

// Command returns berth with args, set up for this Env, not started: for
// a test that kills the CLI or runs several at once.
func (e *Env) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(e.Bin, args...)
	cmd.Dir = e.Dir
	cmd.Env = append(cleanEnviron(), "BERTH_ROOT="+e.Root, "BERTH_RUN_ROOT="+e.RunRoot)
	if v := os.Getenv(ProxyModeEnv); v != "" {
		cmd.Env = append(cmd.Env, "BERTH_PROXY="+v)
	}
	cmd.Env = append(cmd.Env, e.Environ...)
	return cmd
}

// RunInput runs berth with stdin.
func (e *Env) RunInput(stdin string, args ...string) Result {
	e.t.Helper()
	cmd := e.Command(args...)
	cmd.Stdin = strings.NewReader(stdin)
	return e.run(cmd, args)
}

func (e *Env) run(cmd *exec.Cmd, args []string) Result {
	e.t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// MustRun runs berth and fails the test unless it exits 0.
func (e *Env) MustRun(args ...string) Result {
	e.t.Helper()
	r := e.Run(args...)
	if r.Code != 0 {
		e.t.Fatalf("berth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// WriteFile writes a file relative to the working directory.
func (e *Env) WriteFile(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.Dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// ProxyModeEnv, in the test's environment, sets BERTH_PROXY for every
// command that does not set it itself: the port tests run once each way.
const ProxyModeEnv = "BERTH_TEST_PROXY"

// cleanEnviron is the test process's environment without compose variables
// that would change what a command loads.
func cleanEnviron() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "COMPOSE_") || strings.HasPrefix(kv, "BERTH_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// downAll takes down whatever projects a failed test left, so that one
// failure does not leak into the next test.
func (e *Env) downAll() {
	r := e.Run("ls", "-a", "-q")
	for _, p := range strings.Fields(r.Stdout) {
		e.t.Errorf("project %s was still up at the end of the test", p)
		e.Run("-p", p, "down", "-t", "1")
	}
}

// CheckNoLeaks fails the test if a process, mount, cgroup, link, nftables
// table or runtime state
// file of this Env is still there. Processes get a few seconds to go, since
// a supervisor exits on its own once its project is empty.
func (e *Env) CheckNoLeaks() {
	e.t.Helper()
	var leaks []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaks = leaks[:0]
		leaks = append(leaks, e.processes()...)
		leaks = append(leaks, e.mounts()...)
		if os.Getenv(sandboxEnv) == "1" {
			leaks = append(leaks, links()...)
			leaks = append(leaks, nftTables()...)
		}
		if len(leaks) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	leaks = append(leaks, e.Leaks()...)
	for _, l := range leaks {
		e.t.Errorf("left behind: %s", l)
	}
}

// Leaks lists what is left of this Env's containers once every project is
// down: runtime files, cgroups, container records and rootfs directories,
// and volume users (a volume whose user is gone can never be removed).
func (e *Env) Leaks() []string {
	var out []string
	out = append(out, e.runState()...)
	out = append(out, e.cgroups()...)
	out = append(out, e.rootState()...)
	return out
}

// LiveLeaks lists processes, mounts, links and nftables tables of this Env
// (each listed once, with no wait).
func (e *Env) LiveLeaks() []string {
	var out []string
	out = append(out, e.processes()...)
	out = append(out, e.mounts()...)
	if os.Getenv(sandboxEnv) == "1" {
		out = append(out, links()...)
		out = append(out, nftTables()...)
	}
	return out
}

// rootState lists container directories, rootfs directories and their
// locks, and volume users left in the persistent root.
func (e *Env) rootState() []string {
	var out []string
	for _, dir := range []string{"containers", "image/containers"} {
		entries, _ := os.ReadDir(filepath.Join(e.Root, dir))
		for _, d := range entries {
			out = append(out, "dir "+filepath.Join(e.Root, dir, d.Name()))
		}
	}
	// The rootfs locks are 256 shared files (ctr-00 to ctr-ff) that stay,
	// as the store's other locks do; a lock named for a container is a
	// leftover.
	locks, _ := filepath.Glob(filepath.Join(e.Root, "image", "locks", "ctr-*"))
	for _, l := range locks {
		if len(filepath.Base(l)) != len("ctr-00") {
			out = append(out, "file "+l)
		}
	}
	vols, _ := filepath.Glob(filepath.Join(e.Root, "volumes", "*", "volume.json"))
	for _, v := range vols {
		b, err := os.ReadFile(v)
		if err != nil {
			continue
		}
		var meta struct{ Users []string }
		if json.Unmarshal(b, &meta) == nil && len(meta.Users) > 0 {
			out = append(out, fmt.Sprintf("volume %s used by %v", filepath.Base(filepath.Dir(v)), meta.Users))
		}
	}
	return out
}

// KillSupervisors sends SIGKILL to this Env's supervisors and waits until
// they are gone.
func (e *Env) KillSupervisors() int {
	e.t.Helper()
	pids := e.SupervisorPIDs()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for {
			b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
			if err != nil || zombie(b) {
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("supervisor %d does not die", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return len(pids)
}

func zombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// processes lists live processes whose command line or environment names
// this Env's roots.
func (e *Env) processes() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid := d.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(filepath.Join("/proc", pid, f))
			if err != nil {
				continue
			}
			if bytes.Contains(b, []byte(e.Root)) || bytes.Contains(b, []byte(e.RunRoot)) {
				cmd, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
				out = append(out, "process "+pid+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
				break
			}
		}
	}
	return out
}

// mounts lists mounts under this Env's roots.
func (e *Env) mounts() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, e.Root) || strings.Contains(line, e.RunRoot) {
			out = append(out, "mount "+line)
		}
	}
	return out
}

// runState lists files left in the runtime root: after everything is down,
// nothing of berth's runtime state may remain.
func (e *Env) runState() []string {
	var out []string
	_ = filepath.WalkDir(e.RunRoot, func(p string, d os.DirEntry, err error) error {
		// An empty lock file holds no state: it only serialises writers.
		if err == nil && !d.IsDir() && !(d.Name() == "lock" && isEmpty(p)) {
			out = append(out, "file "+p)
		}
		return nil
	})
	// Per-container and per-project directories go with what they hold.
	for _, dir := range []string{"fifo", "runtime", "netns", "projects"} {
		entries, _ := os.ReadDir(filepath.Join(e.RunRoot, dir))
		for _, d := range entries {
			out = append(out, "dir "+filepath.Join(e.RunRoot, dir, d.Name()))
		}
	}
	return out
}

// cgroups lists the cgroups of this Env's containers that still exist.
func (e *Env) cgroups() []string {
	parent := supervisor.Paths{Root: e.Root, RunRoot: e.RunRoot}.CgroupParent()
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
	var out []string
	for _, d := range dirs {
		out = append(out, "cgroup "+d)
	}
	return out
}

// SupervisorPIDs returns the PIDs of this Env's supervisors.
func (e *Env) SupervisorPIDs() []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte("__supervise")) && bytes.Contains(b, []byte(e.RunRoot)) {
			out = append(out, pid)
		}
	}
	return out
}

func isEmpty(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Size() == 0
}

// ContainerIP returns the address of replica index (1 for the first) of
// service on its first network: the one its /etc/hosts gives its
// hostname. `hostname -i` cannot tell it reliably: a hostname of decimal
// digits only (a container ID's first twelve hex digits can be) is taken
// for a number by the resolver and never looked up.
func (e *Env) ContainerIP(service string, index int) string {
	e.t.Helper()
	exec := func(args ...string) string {
		return e.MustRun(append([]string{"exec", "-T", "--index", strconv.Itoa(index), service}, args...)...).Stdout
	}
	host := strings.TrimSpace(exec("hostname"))
	for _, line := range strings.Split(exec("cat", "/etc/hosts"), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && slices.Contains(f[1:], host) {
			return f[0]
		}
	}
	e.t.Fatalf("%s-%d: no address for hostname %q in /etc/hosts", service, index, host)
	return ""
}
