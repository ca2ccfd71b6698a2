package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/tests/harness"
)

// TestResolveImageDigests: config --resolve-image-digests pins images as
// compose does (name:tag@sha256:...), from the store for an image pulled
// from that repository (even once the registry's tag has moved), from the
// registry for the others, and fails in one line for an image nobody has.
func TestResolveImageDigests(t *testing.T) {
	reg := testimage.StartRegistry(t)
	ctx := context.Background()
	first, err := testimage.Busybox(testimage.WithFile("etc/v", 0o644, "1\n"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := testimage.Busybox(testimage.WithFile("etc/v", 0o644, "2\n"))
	if err != nil {
		t.Fatal(err)
	}
	boxRef, err := reg.Push(ctx, "team/box:1", first)
	if err != nil {
		t.Fatal(err)
	}
	otherRef, err := reg.Push(ctx, "team/other:2", second)
	if err != nil {
		t.Fatal(err)
	}
	firstDigest, _ := first.Digest()
	secondDigest, _ := second.Digest()

	e := harness.New(t)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: pin
services:
  box:
    image: %s
  other:
    image: %s
  pinned:
    image: %s/team/box@%s
`, boxRef, otherRef, reg.Host, firstDigest))
	e.MustRun("pull", "box")
	// The tag moves in the registry; the store still has what was pulled.
	if _, err := reg.Push(ctx, "team/box:1", second); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	out := e.MustRun("config", "--resolve-image-digests").Stdout
	for _, want := range []string{
		"image: " + boxRef + "@" + firstDigest.String(),
		"image: " + otherRef + "@" + secondDigest.String(),
		"image: " + reg.Host + "/team/box@" + firstDigest.String(),
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("config --resolve-image-digests lacks %q:\n%s", want, out)
		}
	}
	for _, q := range reg.Requests() {
		if strings.Contains(q, "team/box") {
			t.Errorf("asked the registry about the pulled image: %s", q)
		}
	}
	if out := e.MustRun("config", "--resolve-image-digests", "--images").Stdout; !strings.Contains(out, otherRef+"@"+secondDigest.String()+"\n") {
		t.Errorf("config --resolve-image-digests --images:\n%s", out)
	}

	e.WriteFile("compose.yaml", fmt.Sprintf("name: pin\nservices:\n  gone:\n    image: %s/team/nothing:here\n", reg.Host))
	r := e.Run("config", "--resolve-image-digests")
	if want := "failed to resolve digest for " + reg.Host + "/team/nothing:here"; r.Code == 0 || !strings.HasPrefix(r.Stderr, want) || strings.Count(r.Stderr, "\n") > 1 {
		t.Errorf("unknown image: exit %d, stderr %q, want one line starting %q", r.Code, r.Stderr, want)
	}
}

// eventLines runs events with args and returns its lines of JSON.
func eventLines(t *testing.T, e *harness.Env, args ...string) []map[string]any {
	t.Helper()
	out := e.MustRun(append([]string{"events", "--json"}, args...)...).Stdout
	var evs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("events line %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func actions(evs []map[string]any) string {
	var a []string
	for _, ev := range evs {
		a = append(a, fmt.Sprint(ev["action"]))
	}
	return strings.Join(a, " ")
}

// TestEventsHistory: events --since prints past events, after a supervisor
// was killed too, --until ends the replay or the stream, and the times
// compose accepts (RFC 3339, unix seconds, durations) all work.
func TestEventsHistory(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: hist
services:
  web:
    image: busybox:latest
    command: ["sleep", "3600"]
  job:
    image: busybox:latest
    command: ["true"]
`)
	start := time.Now()
	e.MustRun("up", "-d")
	time.Sleep(time.Second) // job's die
	now := time.Now().Add(time.Second).Format(time.RFC3339Nano)
	evs := eventLines(t, e, "--since", "10m", "--until", now)
	if got := actions(evs); !strings.Contains(got, "create") || !strings.Contains(got, "start") || !strings.Contains(got, "die") {
		t.Fatalf("events --since 10m --until now: %q", got)
	}
	if web := eventLines(t, e, "--since", "10m", "--until", now, "web"); actions(web) != "create start" {
		t.Errorf("events of web: %q", actions(web))
	}

	// The history outlives the supervisor that wrote it.
	e.KillSupervisors()
	e.MustRun("restart", "web")
	now = time.Now().Add(time.Second).Format(time.RFC3339Nano)
	since := strconv.FormatInt(start.Add(-time.Second).Unix(), 10)
	after := eventLines(t, e, "--since", since, "--until", now, "web")
	if got := actions(after); !strings.HasPrefix(got, "create start stop") || !strings.HasSuffix(got, " start") {
		t.Errorf("web's events after a supervisor kill: %q", got)
	}
	// --since a moment ago leaves the old ones out.
	mid := time.Now().Format(time.RFC3339Nano)
	time.Sleep(100 * time.Millisecond)

	// Past events, then live ones until --until.
	until := time.Now().Add(4 * time.Second).Format(time.RFC3339Nano)
	done := make(chan harness.Result, 1)
	go func() { done <- e.Run("events", "--since", mid, "--until", until) }()
	time.Sleep(time.Second)
	e.MustRun("stop", "-t", "1", "web")
	select {
	case r := <-done:
		if r.Code != 0 || !strings.Contains(r.Stdout, " container stop ") || strings.Contains(r.Stdout, " container create ") {
			t.Errorf("events --since mid --until +4s: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("events --until did not end")
	}
	e.MustRun("down", "-t", "1")
}

// snapshot lists every path under dirs with its size, so that a command
// that must change nothing can be checked.
func snapshot(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, _ := de.Info()
			size := int64(0)
			if info != nil && !de.IsDir() {
				size = info.Size()
			}
			out = append(out, fmt.Sprintf("%s %d", p, size))
			return nil
		})
	}
	sort.Strings(out)
	return out
}

// TestDryRunResources: --dry-run up and down list the networks and volumes
// they would create and remove in compose's words, and change nothing: no
// state file, no link, no namespace.
func TestDryRunResources(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: dryres
services:
  web:
    image: busybox:latest
    command: ["sleep", "3600"]
    volumes: [data:/data]
    networks: [front, back]
  db:
    image: busybox:latest
    command: ["sleep", "3600"]
    networks: [back]
  ghost:
    image: example.invalid/ghost:1
    profiles: [ghost]
networks:
  front: {}
  back: {}
volumes:
  data: {}
`)
	before := snapshot(t, e.Root, e.RunRoot)
	if r := e.MustRun("--profile", "ghost", "--dry-run", "up", "-d", "ghost", "web"); !strings.Contains(r.Stderr, "DRY-RUN MODE -  Service ghost  Pulling\n") || strings.Contains(r.Stderr, "Service web") {
		t.Errorf("dry-run up of a missing image:\n%s", r.Stderr)
	}
	r := e.MustRun("--dry-run", "up", "-d", "--scale", "db=2")
	for _, want := range []string{
		"DRY-RUN MODE -  Network dryres_front  Creating",
		"DRY-RUN MODE -  Network dryres_front  Created",
		"DRY-RUN MODE -  Network dryres_back  Created",
		`DRY-RUN MODE -  Volume "dryres_data"  Creating`,
		`DRY-RUN MODE -  Volume "dryres_data"  Created`,
		"DRY-RUN MODE -  Container dryres-db-2  Created",
		"DRY-RUN MODE -  Container dryres-web-1  Starting",
		"DRY-RUN MODE -  Container dryres-web-1  Started",
	} {
		if !strings.Contains(r.Stderr, want+"\n") {
			t.Errorf("dry-run up lacks %q:\n%s", want, r.Stderr)
		}
	}
	if after := snapshot(t, e.Root, e.RunRoot); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("dry-run up changed the state:\nbefore %v\nafter  %v", before, after)
	}
	if leaks := append(e.LiveLeaks(), e.Leaks()...); len(leaks) > 0 {
		t.Errorf("dry-run up left %v", leaks)
	}

	e.MustRun("up", "-d")
	r = e.MustRun("--dry-run", "up", "-d")
	if !strings.Contains(r.Stderr, "Container dryres-web-1  Running") || strings.Contains(r.Stderr, "Network") || strings.Contains(r.Stderr, "Volume") {
		t.Errorf("dry-run up of a running project:\n%s", r.Stderr)
	}
	if r := e.MustRun("--dry-run", "rm", "-f"); strings.Contains(r.Stderr, "Container") {
		t.Errorf("dry-run rm of running containers:\n%s", r.Stderr)
	}
	if r := e.MustRun("--dry-run", "rm", "-f", "-s", "web"); !strings.Contains(r.Stderr, "Container dryres-web-1  Stopping\n") || !strings.Contains(r.Stderr, "Container dryres-web-1  Removed\n") || strings.Contains(r.Stderr, "db") {
		t.Errorf("dry-run rm -s web:\n%s", r.Stderr)
	}
	if r := e.MustRun("--dry-run", "kill", "db"); !strings.Contains(r.Stderr, "Container dryres-db-1  Killed\n") {
		t.Errorf("dry-run kill db:\n%s", r.Stderr)
	}
	before = snapshot(t, e.Root, e.RunRoot)
	links := e.LiveLeaks()
	for _, bad := range [][]string{{"--dry-run", "down", "--rmi", "some"}, {"--dry-run", "up", "--pull", "sometimes"}} {
		if r := e.Run(bad...); r.Code == 0 || strings.Contains(r.Stderr, "DRY-RUN") {
			t.Errorf("berth %s: exit %d, stderr %q", strings.Join(bad, " "), r.Code, r.Stderr)
		}
	}
	r = e.MustRun("--dry-run", "down", "-v", "--rmi", "all")
	for _, want := range []string{
		"DRY-RUN MODE -  Image busybox:latest  Removed",
		"DRY-RUN MODE -  Container dryres-web-1  Stopping",
		"DRY-RUN MODE -  Container dryres-db-1  Removed",
		"DRY-RUN MODE -  Volume dryres_data  Removed",
		"DRY-RUN MODE -  Network dryres_front  Removing",
		"DRY-RUN MODE -  Network dryres_back  Removed",
	} {
		if !strings.Contains(r.Stderr, want+"\n") {
			t.Errorf("dry-run down lacks %q:\n%s", want, r.Stderr)
		}
	}
	// The supervisor's own log may grow; nothing else may change.
	drop := func(l []string) string {
		var keep []string
		for _, s := range l {
			if !strings.Contains(s, "supervisor.log") {
				keep = append(keep, s)
			}
		}
		return strings.Join(keep, "\n")
	}
	if after := snapshot(t, e.Root, e.RunRoot); drop(after) != drop(before) {
		t.Errorf("dry-run down changed the state:\nbefore %v\nafter  %v", before, after)
	}
	if now := e.LiveLeaks(); strings.Join(now, " ") != strings.Join(links, " ") {
		t.Errorf("dry-run down changed processes, links or tables: %v, then %v", links, now)
	}
	if out := e.MustRun("ps", "--format", "{{.Name}} {{.State}}").Stdout; out != "dryres-db-1 running\ndryres-web-1 running\n" {
		t.Errorf("after dry-run down: %q", out)
	}
	e.MustRun("down", "-v", "-t", "1")
}

// TestCompatibilityRun: under --compatibility, up, scale and run name
// containers as compose v1 did, and the commands that find containers
// (exec, logs, cp, restart, DNS by container name) still find them.
func TestCompatibilityRun(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: cmpr
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "echo hello from web; exec sleep 3600"]
  tool:
    build: ./ctx
    profiles: [tools]
`)
	e.WriteFile("ctx/Dockerfile", "FROM busybox:latest\nCMD [\"true\"]\n")
	e.MustRun("--compatibility", "up", "-d")
	e.MustRun("--compatibility", "scale", "web=2")
	if out := e.MustRun("ps", "--format", "{{.Name}}").Stdout; out != "cmpr_web_1\ncmpr_web_2\n" {
		t.Errorf("ps names = %q", out)
	}
	r := e.MustRun("--compatibility", "run", "-T", "web", "sh", "-c", "hostname >/dev/null; nslookup cmpr_web_2 127.0.0.11 >/dev/null && echo resolved")
	if r.Stdout != "resolved\n" {
		t.Errorf("run: nslookup cmpr_web_2 printed %q (stderr %q)", r.Stdout, r.Stderr)
	}
	all := e.MustRun("ps", "-a", "--format", "{{.Name}}").Stdout
	found := false
	for _, n := range strings.Fields(all) {
		if strings.HasPrefix(n, "cmpr_web_run_") && len(n) == len("cmpr_web_run_")+12 {
			found = true
		}
	}
	if !found {
		t.Errorf("no cmpr_web_run_<12 hex> among %q", all)
	}
	if out := e.MustRun("exec", "-T", "--index", "2", "web", "echo", "in two").Stdout; out != "in two\n" {
		t.Errorf("exec --index 2: %q", out)
	}
	if out := e.MustRun("logs", "--no-log-prefix", "--index", "1", "web").Stdout; out != "hello from web\n" {
		t.Errorf("logs --index 1: %q", out)
	}
	if out := e.MustRun("logs", "--index", "2", "web").Stdout; !strings.HasPrefix(out, "web_2 ") || !strings.HasSuffix(out, "| hello from web\n") {
		t.Errorf("logs' prefix under v1 names: %q", out)
	}
	e.WriteFile("f.txt", "copied\n")
	e.MustRun("cp", "f.txt", "web:/tmp/f.txt")
	if out := e.MustRun("exec", "-T", "web", "cat", "/tmp/f.txt").Stdout; out != "copied\n" {
		t.Errorf("after cp: %q", out)
	}
	e.MustRun("restart", "-t", "1", "web")
	if out := e.MustRun("ps", "--format", "{{.Name}} {{.State}}").Stdout; out != "cmpr_web_1 running\ncmpr_web_2 running\n" {
		t.Errorf("after restart: %q", out)
	}
	// A built image is named <project>_<service> too.
	e.MustRun("--compatibility", "--profile", "tools", "build", "tool")
	if out := e.MustRun("image", "ls", "--format", "{{.Repository}}").Stdout; !strings.Contains(out, "cmpr_tool\n") {
		t.Errorf("built image under --compatibility:\n%s", out)
	}
	e.MustRun("--compatibility", "--profile", "tools", "down", "-t", "1", "--rmi", "local")
	if out := e.MustRun("image", "ls", "--format", "{{.Repository}}").Stdout; strings.Contains(out, "cmpr_tool") {
		t.Errorf("down --rmi local left the built image:\n%s", out)
	}
}

// TestParallelOne: --parallel 1 converges one container at a time: each
// replica is created and started before the next is begun.
func TestParallelOne(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: par
services:
  web:
    image: busybox:latest
    command: ["sleep", "3600"]
    scale: 4
`)
	r := e.MustRun("--progress", "plain", "--parallel", "1", "up", "-d")
	var order []string
	for _, l := range strings.Split(r.Stderr, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "Container" {
			order = append(order, f[1]+" "+f[2])
		}
	}
	busy := ""
	for _, step := range order {
		name, what, _ := strings.Cut(step, " ")
		switch what {
		case "Creating":
			if busy != "" {
				t.Errorf("%s begun while %s was not started: %v", name, busy, order)
			}
			busy = name
		case "Started":
			if name == busy {
				busy = ""
			}
		}
	}
	if len(order) < 16 {
		t.Errorf("steps: %v\n%s", order, r.Stderr)
	}
	e.MustRun("--parallel", "1", "down", "-t", "1")
}
