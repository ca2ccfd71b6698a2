package chaos

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berthrun/berth/supervisor"
	"github.com/berthrun/berth/tests/harness"
)

// steps are the fault hook's named steps and the commands that reach
// them. Every step is hit in every run: the first cycles go through them
// in order, the rest pick faults at random.
var steps = []struct {
	name string
	cmds [][]string // one is picked
}{
	{"create.intent", [][]string{recreate}},
	{"create.after-rootfs", [][]string{recreate}},
	{"create.after-volumes", [][]string{recreate}},
	{"create.after-network", [][]string{recreate}},
	{"create.after-ports", [][]string{recreate}},
	{"create.after-record", [][]string{recreate}},
	{"start.after-fifos", [][]string{recreate, restartCmd}},
	{"start.after-runtime-create", [][]string{recreate, restartCmd}},
	{"start.after-run", [][]string{recreate, restartCmd}},
	{"start.after-record", [][]string{recreate, restartCmd}},
	{"stop.before-signal", [][]string{recreate, restartCmd, stopCmd, rmCmd}},
	{"exit.before-record", [][]string{recreate, restartCmd, stopCmd, rmCmd}},
	{"exit.after-record", [][]string{recreate, restartCmd, stopCmd, rmCmd}},
	{"remove.intent", [][]string{recreate, rmCmd}},
	{"remove.after-runtime", [][]string{recreate, rmCmd}},
	{"remove.after-volumes", [][]string{recreate, rmCmd}},
	{"remove.after-network", [][]string{recreate, rmCmd}},
	{"remove.after-rootfs", [][]string{recreate, rmCmd}},
	{"remove.after-fifos", [][]string{recreate, rmCmd}},
	// A restart policy's restart: the container is killed under an armed
	// supervisor.
	{"restart.before-start", nil},
	{"restart.after-fifos", nil},
	{"restart.after-runtime-create", nil},
	{"restart.after-run", nil},
	{"restart.after-record", nil},
}

var (
	recreate   = []string{"up", "-d", "-t", "1", "--force-recreate", "--no-deps", "SERVICE"}
	restartCmd = []string{"restart", "-t", "1", "SERVICE"}
	stopCmd    = []string{"stop", "-t", "1", "SERVICE"}
	rmCmd      = []string{"rm", "-s", "-f", "SERVICE"}
)

const compose = `
name: chaos
services:
  db:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    restart: always
    volumes: ["dbdata:/data"]
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
    init: true
    ports: ["PORT:80"]
    deploy:
      replicas: 2
    depends_on: [db]
volumes:
  dbdata:
`

// run is one chaos run's state and counts.
type run struct {
	t      *testing.T
	e      *harness.Env
	rng    *rand.Rand
	port   int
	faults map[string]int
	fails  int
	leaks  int
	bytes  int64
	sums   map[string][32]byte
	load   atomic.Int64 // requests the load generator got answered
	missed []string     // steps whose command did not reach them
}

func TestChaos(t *testing.T) {
	cycles := envInt(t, "CHAOS_CYCLES", 30)
	seed := int64(envInt(t, "CHAOS_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("chaos: seed %d (CHAOS_SEED=%d replays this run), %d cycles", seed, seed, cycles)
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	r := &run{t: t, e: e, rng: rand.New(rand.NewSource(seed)), faults: map[string]int{}, sums: map[string][32]byte{}}
	r.port = freePort(t)
	e.WriteFile("compose.yaml", strings.Replace(compose, "PORT", strconv.Itoa(r.port), 1))
	e.MustRun("up", "-d")
	r.writeVolume()

	stopLoad := r.startLoad()
	start := time.Now()
	for i := 0; i < cycles; i++ {
		kind := r.cycle(i)
		r.faults[kind]++
		if !r.converge(i, kind) {
			r.fails++
			if r.fails >= 5 {
				t.Errorf("stopping after %d failed cycles", r.fails)
				break
			}
		}
		r.checkVolume()
	}
	stopLoad()
	r.checkVolume()
	r.checkVolumeInContainer()
	e.MustRun("down", "-v", "-t", "1")
	waitFor(func() bool { return len(e.SupervisorPIDs()) == 0 }, 10*time.Second)
	if leaks := append(e.Leaks(), e.LiveLeaks()...); len(leaks) > 0 {
		r.leaks += len(leaks)
		for _, l := range leaks {
			t.Errorf("left after down -v: %s", l)
		}
	}
	var kinds []string
	for k, n := range r.faults {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	summary := fmt.Sprintf("chaos: seed=%d cycles=%d faults: %s; steps-missed=%d failures=%d leaks=%d volume-bytes-checked=%d load-requests=%d in %v",
		seed, cycles, strings.Join(kinds, " "), len(r.missed), r.fails, r.leaks, r.bytes, r.load.Load(), time.Since(start).Round(time.Second))
	if len(r.missed) > 0 {
		t.Logf("steps not reached by their command (the supervisor was killed afterwards instead): %v", r.missed)
	}
	t.Log(summary)
	fmt.Println(summary)
}

// cycle injects one fault and returns its kind.
func (r *run) cycle(i int) string {
	if i < len(steps) {
		return r.stepFault(i)
	}
	switch n := r.rng.Intn(10); {
	case n < 4:
		return r.stepFault(r.rng.Intn(len(steps)))
	case n < 5:
		return r.supervisorKill()
	case n < 6:
		return r.containerKill()
	case n < 7:
		return r.cliKill()
	case n < 8:
		return r.concurrent()
	default:
		return r.scale()
	}
}

// stepFault kills a freshly spawned, armed supervisor at step i.
func (r *run) stepFault(i int) string {
	s := steps[i]
	r.e.KillSupervisors()
	env := []string{"BERTH_FAULT=" + s.name}
	if s.cmds == nil {
		// Spawn an armed supervisor (it adopts), then crash db: its
		// restart policy reaches the step.
		r.e.RunEnv(env, "ps")
		pids := r.e.SupervisorPIDs()
		if pid := r.initPID("db"); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		waitFor(func() bool { return !anyAlive(pids) }, 5*time.Second)
	} else {
		cmd := s.cmds[r.rng.Intn(len(s.cmds))]
		r.e.RunEnv(env, r.withService(cmd)...)
	}
	// A step the command did not reach leaves an armed supervisor: kill
	// it, so the next command talks to a clean one.
	if r.e.KillSupervisors() > 0 {
		r.missed = append(r.missed, s.name)
	}
	return "step"
}

// supervisorKill kills the supervisor at a random moment of a command.
func (r *run) supervisorKill() string {
	cmd := r.e.Command(r.withService(r.pick(recreate, restartCmd, []string{"up", "-d", "-t", "1", "--scale", "web=" + strconv.Itoa(1+r.rng.Intn(3))}))...)
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	time.Sleep(time.Duration(r.rng.Intn(800)) * time.Millisecond)
	r.e.KillSupervisors()
	_ = cmd.Wait()
	return "supervisor"
}

// containerKill kills a random container's init from the host.
func (r *run) containerKill() string {
	svc := r.pick([]string{"db"}, []string{"web"})[0]
	if pid := r.initPID(svc); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return "container"
}

// cliKill kills the CLI in the middle of a command; the supervisor goes on.
func (r *run) cliKill() string {
	cmd := r.e.Command(r.withService(r.pick(recreate, restartCmd, stopCmd))...)
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	time.Sleep(time.Duration(r.rng.Intn(600)) * time.Millisecond)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return "cli"
}

// concurrent runs two or three commands at once, sometimes with no
// supervisor running, so that they race to spawn one.
func (r *run) concurrent() string {
	if r.rng.Intn(2) == 0 {
		r.e.KillSupervisors()
	}
	n := 2 + r.rng.Intn(2)
	var wg sync.WaitGroup
	for range n {
		args := r.withService(r.pick(recreate, restartCmd, []string{"up", "-d", "-t", "1"}, []string{"up", "-d", "-t", "1", "--scale", "web=3"}))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.e.Command(args...).Run()
		}()
	}
	wg.Wait()
	return "concurrent"
}

// scale changes web's replicas while the load generator sends requests.
func (r *run) scale() string {
	r.e.Run("up", "-d", "-t", "1", "--scale", "web="+strconv.Itoa(1+r.rng.Intn(3)))
	return "scale"
}

// converge runs the command that must repair everything and checks the
// result: every container once and running, no object without a record.
func (r *run) converge(i int, kind string) bool {
	t := r.t
	res := r.e.Run("up", "-d", "-t", "1")
	if res.Code != 0 {
		t.Errorf("cycle %d (%s): up after the fault exited %d: %s", i, kind, res.Code, res.Stderr)
		return false
	}
	recs := r.ps()
	names := map[string]int{}
	for _, p := range recs {
		names[p.Name]++
	}
	want := []string{"chaos-db-1", "chaos-web-1", "chaos-web-2"}
	ok := true
	for _, n := range want {
		if names[n] != 1 {
			t.Errorf("cycle %d (%s): %d containers named %s: %+v", i, kind, names[n], n, recs)
			ok = false
		}
	}
	if len(recs) != len(want) {
		t.Errorf("cycle %d (%s): %d containers, want %d: %+v", i, kind, len(recs), len(want), recs)
		ok = false
	}
	for _, p := range recs {
		// db's restart policy may be between two runs.
		if p.State != "running" && !(p.Service == "db" && p.State == "restarting") {
			t.Errorf("cycle %d (%s): %s is %s after up", i, kind, p.Name, p.State)
			ok = false
		}
	}
	if n := len(r.e.SupervisorPIDs()); n > 1 {
		t.Errorf("cycle %d (%s): %d supervisors", i, kind, n)
		ok = false
	}
	if leaks := r.orphans(recs); len(leaks) > 0 {
		r.leaks += len(leaks)
		t.Errorf("cycle %d (%s): objects of no container: %v", i, kind, leaks)
		ok = false
	}
	return ok
}

type psEntry struct {
	Name, Service, State, ID string
}

func (r *run) ps() []psEntry {
	out := r.e.Run("ps", "-a", "--format", "json").Stdout
	var list []psEntry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var p psEntry
		if json.Unmarshal([]byte(line), &p) == nil && p.Name != "" {
			list = append(list, p)
		}
	}
	return list
}

// orphans lists the per-container objects (state, FIFOs, namespaces,
// rootfs, cgroups) whose container is not one of recs.
func (r *run) orphans(recs []psEntry) []string {
	own := map[string]bool{}
	for _, p := range recs {
		own[p.ID] = true
	}
	mine := func(name string) bool {
		for id := range own {
			if strings.HasPrefix(name, id) || strings.HasPrefix(id, name) && len(name) >= 12 {
				return true
			}
		}
		return false
	}
	var out []string
	dirs := []string{
		filepath.Join(r.e.RunRoot, "runtime"), filepath.Join(r.e.RunRoot, "fifo"), filepath.Join(r.e.RunRoot, "netns"),
		filepath.Join(r.e.Root, "image", "containers"), filepath.Join(r.e.Root, "containers"),
	}
	parent := supervisor.Paths{Root: r.e.Root, RunRoot: r.e.RunRoot}.CgroupParent()
	cg, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
	dirs = append(dirs, cg...)
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() && len(e.Name()) == 64 && !mine(e.Name()) {
				var in []string
				sub, _ := os.ReadDir(filepath.Join(d, e.Name()))
				for _, f := range sub {
					in = append(in, f.Name())
				}
				out = append(out, fmt.Sprintf("%s %v", filepath.Join(d, e.Name()), in))
			}
		}
	}
	return out
}

// writeVolume fills the named volume with known data from the seeded
// generator, through a container, before any fault.
func (r *run) writeVolume() {
	dir := filepath.Join(r.e.Root, "volumes", "chaos_dbdata", "_data")
	for i := range 4 {
		b := make([]byte, 64<<10+i*1000)
		r.rng.Read(b)
		name := fmt.Sprintf("blob-%d", i)
		res := r.e.RunInput(string(b), "exec", "-T", "db", "sh", "-c", "cat > /data/"+name+" && sync")
		if res.Code != 0 {
			r.t.Fatalf("writing %s into the volume: %s", name, res.Stderr)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, b) {
			r.t.Fatalf("%s in the volume: %d bytes, %v", name, len(got), err)
		}
		r.sums[name] = sha256.Sum256(b)
	}
}

// checkVolume verifies every byte written into the volume.
func (r *run) checkVolume() {
	dir := filepath.Join(r.e.Root, "volumes", "chaos_dbdata", "_data")
	for name, want := range r.sums {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			r.t.Errorf("volume file %s: %v", name, err)
			r.fails++
			continue
		}
		if sha256.Sum256(b) != want {
			r.t.Errorf("volume file %s changed", name)
			r.fails++
		}
		r.bytes += int64(len(b))
	}
}

// checkVolumeInContainer reads the volume's files back through a
// container: what the container sees is what was written.
func (r *run) checkVolumeInContainer() {
	res := r.e.Run("exec", "-T", "db", "sh", "-c", "sha256sum /data/blob-*")
	if res.Code != 0 {
		r.t.Errorf("sha256sum in db: %s", res.Stderr)
		r.fails++
		return
	}
	for name, want := range r.sums {
		line := fmt.Sprintf("%x  /data/%s", want, name)
		if !strings.Contains(res.Stdout, line) {
			r.t.Errorf("in the container, %s is not what was written: %s", name, res.Stdout)
			r.fails++
		}
	}
}

// startLoad sends requests to web's published port until stopped.
func (r *run) startLoad() func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: time.Second}
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", r.port))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					r.load.Add(1)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// initPID is the host PID of the service's first container's init, or 0.
func (r *run) initPID(service string) int {
	out := r.e.Run("top", service).Stdout
	lines := strings.Split(out, "\n")
	if len(lines) < 3 {
		return 0
	}
	f := strings.Fields(lines[2])
	if len(f) < 2 {
		return 0
	}
	pid, _ := strconv.Atoi(f[1])
	return pid
}

func (r *run) pick(cmds ...[]string) []string { return cmds[r.rng.Intn(len(cmds))] }

// withService puts db or web where a command has SERVICE.
func (r *run) withService(cmd []string) []string {
	svc := r.pick([]string{"db"}, []string{"web"})[0]
	out := make([]string, len(cmd))
	for i, a := range cmd {
		if a == "SERVICE" {
			a = svc
		}
		out[i] = a
	}
	return out
}

func anyAlive(pids []int) bool {
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] != 'Z' {
			return true
		}
	}
	return false
}

func waitFor(cond func() bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
