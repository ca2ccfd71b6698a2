package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// defaultsScript prints what TestDefaults checks as key=value lines.
const defaultsScript = `
echo pid=$$
echo cmdline=$(tr '\0' ' ' < /proc/1/cmdline)
echo hostname=$(hostname)
echo capeff=$(grep CapEff /proc/self/status | tr -d '\t' | cut -d: -f2)
echo capbnd=$(grep CapBnd /proc/self/status | tr -d '\t' | cut -d: -f2)
echo seccomp=$(grep '^Seccomp:' /proc/self/status | tr -d '\t' | cut -d: -f2)
echo nnp=$(grep '^NoNewPrivs:' /proc/self/status | tr -d '\t' | cut -d: -f2)
echo kcore=$(cat /proc/kcore | wc -c)
echo keys=$(cat /proc/keys | wc -c)
echo acpi=$(ls /proc/acpi 2>/dev/null | wc -l)
touch /sys/x 2>/dev/null && echo sys=rw || echo sys=ro
echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo procsys=rw || echo procsys=ro
mount -t tmpfs x /mnt 2>/dev/null && echo mount=ok || echo mount=denied
echo procs=$(ls /proc | grep -c '^[0-9]')
echo netdevs=$(ls /sys/class/net | tr '\n' ' ')
echo shm=$(grep ' /dev/shm ' /proc/mounts | grep -o 'size=[0-9]*k')
echo path=$PATH
echo home=$HOME
echo uid=$(id -u)
echo devnull=$(stat -c %t,%T /dev/null)
echo fuse=$(ls /dev/fuse 2>/dev/null | wc -l)
echo rootprop=$(grep ' / / ' /proc/self/mountinfo | grep -c shared)
`

func TestDefaults(t *testing.T) {
	e := newEnv(t)
	out, st := e.run(e.spec("sh", "-c", defaultsScript))
	if st.Code != 0 {
		t.Fatalf("exit %d: %s", st.Code, out)
	}
	got := kv(out)
	want := map[string]string{
		"pid":      "1",
		"hostname": "box",
		"capeff":   "00000000a80425fb",
		"capbnd":   "00000000a80425fb",
		"seccomp":  "2",
		"nnp":      "0",
		"kcore":    "0",
		"keys":     "0",
		"acpi":     "0",
		"sys":      "ro",
		"procsys":  "ro",
		"mount":    "denied",
		"netdevs":  "lo",
		"shm":      "size=65536k",
		"path":     DefaultPath,
		"home":     "/", // Spec.User not resolved: the zero User has no home
		"uid":      "0",
		"devnull":  "1,3",
		"fuse":     "0",
		"rootprop": "0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !strings.HasPrefix(got["cmdline"], "sh -c") {
		t.Errorf("PID 1 cmdline = %q", got["cmdline"])
	}
	// Only the shell and its pipeline children are visible: no host PID.
	if n, _ := strconv.Atoi(got["procs"]); n == 0 || n > 5 {
		t.Errorf("%d processes visible in /proc", n)
	}
}

func TestCapabilities(t *testing.T) {
	e := newEnv(t)
	full := hostCapBnd(t)
	cases := []struct {
		name       string
		add, drop  []string
		privileged bool
		user       *User
		want       string
	}{
		{name: "default", want: "00000000a80425fb"},
		{name: "drop all", drop: []string{"ALL"}, want: "0000000000000000"},
		{name: "drop all add one", drop: []string{"all"}, add: []string{"net_bind_service"}, want: "0000000000000400"},
		{name: "add net_admin", add: []string{"CAP_NET_ADMIN"}, want: "00000000a80435fb"},
		{name: "drop chown", drop: []string{"CHOWN"}, want: "00000000a80425fa"},
		{name: "add all", add: []string{"ALL"}, want: full},
		{name: "privileged", privileged: true, want: full},
		{name: "non-root", user: &User{UID: 1000, GID: 1000}, want: "0000000000000000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := e.spec("sh", "-c", "grep CapEff /proc/self/status | tr -d '\\t' | cut -d: -f2; id -u")
			s.CapAdd, s.CapDrop, s.Privileged = tc.add, tc.drop, tc.privileged
			if tc.user != nil {
				s.User = *tc.user
			}
			out, st := e.run(s)
			if st.Code != 0 {
				t.Fatalf("exit %d: %s", st.Code, out)
			}
			if got := strings.Fields(out)[0]; got != tc.want {
				t.Errorf("CapEff = %s, want %s", got, tc.want)
			}
		})
	}
}

func hostCapBnd(t *testing.T) string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no CapBnd")
	return ""
}

func TestPrivileged(t *testing.T) {
	e := newEnv(t)
	s := e.spec("sh", "-c", `
grep '^Seccomp:' /proc/self/status | tr -d '\t'
touch /sys/kernel/x 2>/dev/null; grep ' /sys ' /proc/mounts | grep -q ' rw,' && echo sys=rw || echo sys=ro
echo kcore=$(grep -c ' /proc/kcore ' /proc/mounts)
echo loop=$(ls /dev | grep -c '^loop')
echo mount=$(mount -t tmpfs x /mnt && echo ok)
umount /mnt`)
	s.Privileged = true
	out, st := e.run(s)
	if st.Code != 0 {
		t.Fatalf("exit %d: %s", st.Code, out)
	}
	got := kv(strings.ReplaceAll(out, "Seccomp:", "seccomp="))
	for k, v := range map[string]string{"seccomp": "0", "sys": "rw", "kcore": "0", "mount": "ok"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (%s)", k, got[k], v, out)
		}
	}
	if _, err := os.Stat("/dev/loop0"); err == nil && got["loop"] == "0" {
		t.Errorf("host devices not visible: %s", out)
	}
}

func TestUserAndGroups(t *testing.T) {
	e := newEnv(t)
	u, err := ResolveUser(e.rootfs, "app", []string{"nogroup", "42"})
	if err != nil {
		t.Fatal(err)
	}
	s := e.spec("sh", "-c", "echo uid=$(id -u) gid=$(id -g); echo groups=$(id -G); echo home=$HOME; touch /x 2>/dev/null && echo write=ok || echo write=denied")
	s.User = u
	out, st := e.run(s)
	if st.Code != 0 {
		t.Fatalf("exit %d: %s", st.Code, out)
	}
	if !strings.Contains(out, "uid=1000 gid=1000") {
		t.Errorf("identity: %s", out)
	}
	got := kv(out)
	groups := strings.Fields(got["groups"])
	slices.Sort(groups)
	if strings.Join(groups, " ") != "10 1000 42 65534" {
		t.Errorf("groups = %q", got["groups"])
	}
	if got["home"] != "/home/app" {
		t.Errorf("HOME = %q", got["home"])
	}
	if got["write"] != "denied" {
		t.Errorf("uid 1000 could write to / (owned by root): %s", out)
	}
}

func TestReadOnlyRootfsAndMounts(t *testing.T) {
	e := newEnv(t)
	ro := filepath.Join(e.base, "ro")
	rw := filepath.Join(e.base, "rw")
	for _, d := range []string{ro, rw} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ro, "f"), []byte("from-host"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := e.spec("sh", "-c", `
touch /x 2>/dev/null && echo root=rw || echo root=ro
touch /dev/shm/x && echo shm=rw
touch /run/x && echo tmpfs=rw
echo tmpfsopts=$(grep ' /run ' /proc/mounts | cut -d' ' -f4),mode=$(stat -c %a /run)
echo rofile=$(cat /data/ro/f)
touch /data/ro/y 2>/dev/null && echo bindro=rw || echo bindro=ro
echo hi > /data/rw/z && echo bindrw=rw
echo ipfwd=$(cat /proc/sys/net/ipv4/ip_forward)
echo nofile=$(ulimit -Hn),$(ulimit -Sn)`)
	s.ReadOnlyRootfs = true
	s.Tmpfs = map[string]string{"/run": "size=1m,mode=1777"}
	s.Mounts = []Mount{
		{Source: ro, Destination: "/data/ro", ReadOnly: true},
		{Source: rw, Destination: "/data/rw"},
	}
	s.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &own); err != nil {
		t.Fatal(err)
	}
	s.Ulimits = []Ulimit{{Name: "nofile", Soft: 1024, Hard: int64(own.Max) + 1000}}
	c, warnings, err := Create(e.state, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "nofile hard") {
		t.Errorf("warnings = %q, want one about nofile", warnings)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}

	s.ID = e.id()
	out, st := e.run(s)
	if st.Code != 0 {
		t.Fatalf("exit %d: %s", st.Code, out)
	}
	got := kv(out)
	want := map[string]string{
		"root": "ro", "shm": "rw", "tmpfs": "rw", "rofile": "from-host", "bindro": "ro", "bindrw": "rw",
		"ipfwd": "1", "nofile": strconv.FormatUint(own.Max, 10) + ",1024",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, o := range []string{"nosuid", "nodev", "noexec", "size=1024k", "mode=1777"} {
		if !strings.Contains(got["tmpfsopts"], o) {
			t.Errorf("tmpfs options %q lack %s", got["tmpfsopts"], o)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(rw, "z")); string(data) != "hi\n" {
		t.Errorf("bind mount write not seen on host: %q", data)
	}
	if _, err := os.Stat(filepath.Join(e.rootfs, "x")); err == nil {
		t.Error("read-only rootfs was written")
	}
}

func TestResourcesApplied(t *testing.T) {
	e := newEnv(t)
	s := e.spec("sleep", "100")
	s.Resources = Resources{MemoryBytes: 64 << 20, NanoCPUs: 5e8, CPUShares: 512, CpusetCpus: "0", PidsLimit: 64}
	c := e.start(s)
	path := func(ctrl, file string) string {
		return filepath.Join("/sys/fs/cgroup", ctrl, e.cgroupParent, s.ID, file)
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		t.Skip("cgroup v1 layout expected")
	}
	for file, want := range map[string]string{
		path("memory", "memory.limit_in_bytes"):       "67108864",
		path("memory", "memory.memsw.limit_in_bytes"): "134217728",
		path("cpu", "cpu.cfs_quota_us"):               "50000",
		path("cpu", "cpu.cfs_period_us"):              "100000",
		path("cpu", "cpu.shares"):                     "512",
		path("cpuset", "cpuset.cpus"):                 "0",
		path("pids", "pids.max"):                      "64",
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if got := strings.TrimSpace(string(data)); got != want {
			t.Errorf("%s = %s, want %s", file, got, want)
		}
	}
	procs, err := c.Processes()
	if err != nil || len(procs) != 1 || procs[0] != c.Pid() {
		t.Errorf("Processes() = %v, %v; pid %d", procs, err, c.Pid())
	}
}

func TestOOMKilled(t *testing.T) {
	e := newEnv(t)
	s := e.spec("sh", "-c", `x=$(head -c 100000000 /dev/zero | tr '\0' a); echo survived`)
	s.Resources.MemoryBytes = 32 << 20
	out, st := e.run(s)
	if st.Code != 137 || !st.OOMKilled {
		t.Errorf("status %+v, want 137 and OOMKilled (%s)", st, out)
	}
}

func TestStop(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	t.Run("pid1 ignores SIGTERM", func(t *testing.T) {
		c := e.start(e.spec("sleep", "100"))
		start := time.Now()
		if err := c.Stop(ctx, syscall.SIGTERM, 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		st, err := c.Wait(ctx)
		if err != nil || st.Code != 137 || st.OOMKilled {
			t.Errorf("status %+v %v, want 137", st, err)
		}
		if d := time.Since(start); d < 500*time.Millisecond || d > 5*time.Second {
			t.Errorf("stop took %v", d)
		}
	})
	t.Run("trap", func(t *testing.T) {
		c := e.start(e.spec("sh", "-c", `trap 'exit 7' TERM; echo ready > /tmp/ready; while :; do sleep 0.05; done`))
		waitFile(t, filepath.Join(e.rootfs, "tmp/ready"))
		if err := c.Stop(ctx, nil, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if st, _ := c.Wait(ctx); st.Code != 7 {
			t.Errorf("status %+v, want 7", st)
		}
		_ = os.Remove(filepath.Join(e.rootfs, "tmp/ready"))
	})
	t.Run("init", func(t *testing.T) {
		s := e.spec("sleep", "100")
		s.Init = true
		s.InitBinary = staticReaper(t)
		c := e.start(s)
		time.Sleep(100 * time.Millisecond) // let the reaper install its handlers
		start := time.Now()
		if err := c.Stop(ctx, syscall.SIGTERM, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		st, _ := c.Wait(ctx)
		if st.Code != 143 {
			t.Errorf("status %+v, want 143", st)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("stop took %v with init", d)
		}
	})
	t.Run("out of descriptors", func(t *testing.T) {
		// libcontainer cannot open /proc/PID/stat then and calls the
		// container stopped; Stop must kill it all the same.
		c := e.start(e.spec("sleep", "100"))
		pid := c.Pid()
		var rl unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
		// The limit bounds descriptor numbers, not their count: lower it
		// a little above the highest in use, then take what is left.
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		highest := 0
		for _, d := range fds {
			highest = max(highest, atoi(t, d.Name()))
		}
		full := rl
		full.Cur = uint64(highest + 16)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &full); err != nil {
			t.Fatal(err)
		}
		var taken []int
		for {
			fd, err := unix.Dup(0)
			if err != nil {
				break
			}
			taken = append(taken, fd)
		}
		if f, err := os.Open("/proc/self/stat"); err == nil {
			f.Close()
			t.Fatal("descriptors left after filling the table")
		}
		sctx, cancel := context.WithTimeout(ctx, 3*KillWait)
		err = c.Stop(sctx, syscall.SIGTERM, 200*time.Millisecond)
		cancel()
		for _, fd := range taken {
			unix.Close(fd)
		}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
		if err != nil {
			t.Fatalf("stop out of descriptors: %v", err)
		}
		st, err := c.Wait(ctx)
		if err != nil || st.Code != 137 {
			t.Errorf("status %+v %v, want 137", st, err)
		}
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			t.Errorf("init %d still there: %v", pid, err)
		}
	})
	t.Run("init reaps and passes exit code", func(t *testing.T) {
		s := e.spec("sh", "-c", `sleep 0.1 & (sleep 0.05 &) ; wait; echo pid1=$(cat /proc/1/cmdline | tr '\0' ' '); exit 4`)
		s.Init = true
		s.InitBinary = staticReaper(t)
		out, st := e.run(s)
		if st.Code != 4 {
			t.Errorf("status %+v (%s)", st, out)
		}
		if !strings.Contains(out, "pid1="+InitPath+" "+ReaperArg+" -- sh") {
			t.Errorf("PID 1 is not the reaper: %s", out)
		}
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(p); err == nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", p)
}

func TestExec(t *testing.T) {
	e := newEnv(t)
	s := e.spec("sleep", "100")
	s.Env = []string{"FOO=bar"}
	c := e.start(s)
	ctx := context.Background()

	code, err := c.Exec(ctx, ExecSpec{Args: []string{"sh", "-c", "exit 3"}})
	if err != nil || code != 3 {
		t.Errorf("exec exit = %d, %v; want 3", code, err)
	}
	var out bytes.Buffer
	code, err = c.Exec(ctx, ExecSpec{
		Args:   []string{"sh", "-c", "echo host=$(hostname) foo=$FOO baz=$BAZ uid=$(id -u) pid1=$(cat /proc/1/comm); grep -E 'CapEff|Seccomp:' /proc/self/status | tr -d '\\t'"},
		Env:    []string{"BAZ=qux"},
		Stdout: &out,
	})
	if err != nil || code != 0 {
		t.Fatalf("exec = %d, %v", code, err)
	}
	for _, w := range []string{"host=box", "foo=bar", "baz=qux", "uid=0", "pid1=sleep", "CapEff:00000000a80425fb", "Seccomp:2"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("exec output %q lacks %q", out.String(), w)
		}
	}
	u, err := ResolveUser(e.rootfs, "app", nil)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code, err := c.Exec(ctx, ExecSpec{Args: []string{"id", "-u"}, User: &u, Stdout: &out}); err != nil || code != 0 || strings.TrimSpace(out.String()) != "1000" {
		t.Errorf("exec as app: %d %v %q", code, err, out.String())
	}
	// A context deadline kills the process.
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if code, err := c.Exec(tctx, ExecSpec{Args: []string{"sleep", "50"}}); !errors.Is(err, context.DeadlineExceeded) || code != 137 {
		t.Errorf("exec past deadline = %d, %v", code, err)
	}
	out.Reset()
	if code, err := c.Exec(ctx, ExecSpec{Args: []string{"tty"}, Tty: true, Stdout: &out}); err != nil || code != 0 || !strings.Contains(out.String(), "/dev/pts/") {
		t.Errorf("exec with tty: %d %v %q", code, err, out.String())
	}
}

// TestExecStdio: an exec's stdio are pipes of berth's even when the
// caller's are files, stdin's end reaches the process, stdout and stderr
// stay apart, and a process left behind holding the pipes does not keep
// the exec from returning.
func TestExecStdio(t *testing.T) {
	e := newEnv(t)
	c := e.start(e.spec("sleep", "100"))
	ctx := context.Background()

	host, err := os.CreateTemp(t.TempDir(), "host")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	var errOut bytes.Buffer
	code, err := c.Exec(ctx, ExecSpec{
		Args:   []string{"sh", "-c", "readlink /proc/self/fd/0; readlink /proc/self/fd/1; cat; echo oops >&2"},
		Stdin:  strings.NewReader("from stdin\n"),
		Stdout: host,
		Stderr: &errOut,
	})
	if err != nil || code != 0 {
		t.Fatalf("exec = %d, %v", code, err)
	}
	out, _ := os.ReadFile(host.Name())
	lines := strings.Split(string(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "pipe:") || !strings.HasPrefix(lines[1], "pipe:") || lines[2] != "from stdin" {
		t.Errorf("stdout %q: want two pipes and what stdin brought", out)
	}
	if errOut.String() != "oops\n" {
		t.Errorf("stderr %q", errOut.String())
	}

	start := time.Now()
	var bg bytes.Buffer
	code, err = c.Exec(ctx, ExecSpec{Args: []string{"sh", "-c", "sleep 20 & echo started"}, Stdout: &bg, Stdin: strings.NewReader("")})
	if err != nil || code != 0 || bg.String() != "started\n" {
		t.Errorf("exec leaving a process behind: %d %v %q", code, err, bg.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("exec waited %v for the process it left behind", d)
	}
}

func TestPauseResumeState(t *testing.T) {
	e := newEnv(t)
	c := e.start(e.spec("sleep", "100"))
	st, err := c.State()
	if err != nil || st.Status != StatusRunning || st.Pid <= 0 || time.Since(st.Started) > time.Minute {
		t.Fatalf("state %+v %v", st, err)
	}
	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.State(); st.Status != StatusPaused {
		t.Errorf("after Pause: %s", st.Status)
	}
	if state := procState(t, st.Pid); state != "D" && state != "S" {
		t.Logf("paused process state %s", state)
	}
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.State(); st.Status != StatusRunning {
		t.Errorf("after Resume: %s", st.Status)
	}
	// Destroy of a paused container must work too.
	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if st, _ := c.State(); st.Status != StatusStopped {
		t.Errorf("after Destroy: %s", st.Status)
	}
}

func procState(t *testing.T, pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "?"
	}
	s := string(data)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
}

func TestFIFOStdio(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.base, "stdout.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s := e.spec("sh", "-c", `echo first; sleep 0.5; echo second; echo third; exit 5`)
	s.Stdio = Stdio{StdoutPath: fifo, StderrPath: fifo}
	c := e.start(s)
	r, err := os.OpenFile(fifo, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("read %q %v", line, err)
	}
	// The "supervisor" goes away: the container must not get SIGPIPE.
	r.Close()
	st, err := c.Wait(context.Background())
	if err != nil || st.Code != 5 {
		t.Errorf("status %+v %v, want 5 (141 would be SIGPIPE)", st, err)
	}
}

func TestTerminal(t *testing.T) {
	e := newEnv(t)
	s := e.spec("sh", "-c", "tty; exit 2")
	s.Terminal = true
	c := e.start(s)
	var out bytes.Buffer
	buf := make([]byte, 256)
	for {
		n, err := c.Console().Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	st, _ := c.Wait(context.Background())
	if st.Code != 2 || !strings.Contains(out.String(), "/dev/pts/0") {
		t.Errorf("status %+v, output %q", st, out.String())
	}
}

func TestAdoptInProcess(t *testing.T) {
	e := newEnv(t)
	s := e.spec("sleep", "100")
	orig := e.start(s)
	c, err := Load(e.state, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.State(); err != nil || st.Status != StatusRunning || st.Pid != orig.Pid() {
		t.Fatalf("loaded state %+v %v", st, err)
	}
	var out bytes.Buffer
	if code, err := c.Exec(context.Background(), ExecSpec{Args: []string{"hostname"}, Stdout: &out}); err != nil || code != 0 || out.String() != "box\n" {
		t.Errorf("exec in loaded: %d %v %q", code, err, out.String())
	}
	if err := c.Stop(context.Background(), syscall.SIGTERM, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(context.Background())
	if err != nil || !st.Unknown {
		t.Errorf("loaded Wait = %+v %v", st, err)
	}
	if st, _ := orig.Wait(context.Background()); st.Code != 137 {
		t.Errorf("parent saw %+v", st)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(e.state, s.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load after Destroy: %v", err)
	}
}

func TestAdoptFromOtherProcess(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), adoptHelperEnv+"="+strings.Join([]string{e.state, e.rootfs, e.cgroupParent, id}, "|"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v %s", err, out)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	c, err := Load(e.state, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Destroy() })
	if st, err := c.State(); err != nil || st.Status != StatusRunning || st.Pid != pid {
		t.Fatalf("state %+v %v, helper said pid %d", st, err, pid)
	}
	var buf bytes.Buffer
	if code, err := c.Exec(context.Background(), ExecSpec{Args: []string{"hostname"}, Stdout: &buf}); err != nil || code != 0 || buf.String() != "adopted\n" {
		t.Errorf("exec: %d %v %q", code, err, buf.String())
	}
	if err := c.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st, err := c.Wait(ctx); err != nil || !st.Unknown {
		t.Errorf("wait: %+v %v", st, err)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
}

func TestCreateErrors(t *testing.T) {
	e := newEnv(t)
	s := e.spec("true")
	c, _, err := Create(e.state, s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	if _, _, err := Create(e.state, s); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("duplicate ID: %v", err)
	}
	bad := e.spec("true")
	bad.CapAdd = []string{"CAP_BOGUS"}
	if _, _, err := Create(e.state, bad); err == nil || !strings.Contains(err.Error(), "CAP_BOGUS") {
		t.Errorf("bad cap: %v", err)
	}
	bad = e.spec("true")
	bad.Ulimits = []Ulimit{{Name: "nofile", Soft: 10, Hard: 5}}
	if _, _, err := Create(e.state, bad); err == nil {
		t.Error("soft > hard accepted")
	}
	if _, err := c.Wait(context.Background()); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Wait before Start: %v", err)
	}
}

func TestJoinNetNSAndHostnameDefault(t *testing.T) {
	e := newEnv(t)
	a := e.start(e.spec("sleep", "100"))
	s := e.spec("sh", "-c", "echo netns=$(readlink /proc/self/ns/net); echo host=$(hostname); echo nnp=$(grep NoNewPrivs /proc/self/status | tr -d '\\t' | cut -d: -f2)")
	s.Hostname = ""
	s.NetNSPath = "/proc/" + strconv.Itoa(a.Pid()) + "/ns/net"
	s.NoNewPrivileges = true
	out, st := e.run(s)
	if st.Code != 0 {
		t.Fatalf("exit %d: %s", st.Code, out)
	}
	want, err := os.Readlink(s.NetNSPath)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Readlink("/proc/self/ns/net")
	got := kv(out)
	if got["netns"] != want || want == host {
		t.Errorf("netns %q, want %q (host %q)", got["netns"], want, host)
	}
	if got["host"] != s.ID {
		t.Errorf("default hostname %q, want the ID %q", got["host"], s.ID)
	}
	if got["nnp"] != "1" {
		t.Errorf("NoNewPrivs = %q", got["nnp"])
	}
}

func TestStartFailureLeavesNothing(t *testing.T) {
	e := newEnv(t)
	s := e.spec("/no/such/command")
	s.Resources.OomScoreAdj = 500
	c, _, err := Create(e.state, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err == nil {
		t.Error("start of a missing command succeeded")
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(e.state); len(entries) != 0 {
		t.Errorf("state left: %v", entries)
	}
}

func TestOomScoreAdj(t *testing.T) {
	e := newEnv(t)
	s := e.spec("sleep", "100")
	s.Resources.OomScoreAdj = 500
	c := e.start(s)
	data, err := os.ReadFile("/proc/" + strconv.Itoa(c.Pid()) + "/oom_score_adj")
	if err != nil || strings.TrimSpace(string(data)) != "500" {
		t.Errorf("oom_score_adj = %q %v", data, err)
	}
}
