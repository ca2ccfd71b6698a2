package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// repo is the module's root directory.
func repo(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func TestConfigValidatesEverySample(t *testing.T) {
	e := harness.New(t)
	files, _ := filepath.Glob(filepath.Join(repo(t), "samples", "*", "compose.yaml"))
	seeds, _ := filepath.Glob(filepath.Join(repo(t), "tests", "testdata", "seed", "*.yaml"))
	if len(files) == 0 || len(seeds) == 0 {
		t.Fatal("no samples or seed fixtures found")
	}
	for _, f := range seeds {
		if !strings.Contains(f, "verbatim") {
			files = append(files, f)
		}
	}
	for _, f := range files {
		r := e.Run("-f", f, "config", "-q")
		if r.Code != 0 || r.Stdout != "" {
			t.Errorf("config -q %s: exit %d, stdout %q, stderr %q", f, r.Code, r.Stdout, r.Stderr)
		}
	}
}

// TestConfigErrors: bad input gives one line on stderr that says what and
// where, exit 1, and nothing on stdout.
func TestConfigErrors(t *testing.T) {
	e := harness.New(t)
	seed := filepath.Join(repo(t), "tests", "testdata", "seed", "y4-wordpress-verbatim.yaml")
	tests := []struct {
		name    string
		content string // written to compose.yaml unless file is set
		file    string
		want    string
	}{
		{name: "seed 001:414 malformed port", file: seed, want: "y4-wordpress-verbatim.yaml:22:15: did not find expected '-' indicator"},
		{name: "unknown key", content: "services:\n  web:\n    image: x\n    restrat: always\n", want: `compose.yaml:4: unknown key "restrat" in services.web`},
		{name: "bad interpolation", content: "services:\n  web:\n    image: \"x:${TAG:?TAG is required}\"\n", want: "compose.yaml:3: invalid interpolation in services.web.image: required variable TAG is missing a value: TAG is required"},
		{name: "cycle", content: "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [c]\n  c:\n    image: x\n    depends_on: [a]\n", want: "dependency cycle detected: a -> b -> c -> a"},
		{name: "unknown dependency", content: "services:\n  a:\n    image: x\n    depends_on: [db]\n", want: `service "a" depends on undefined service "db"`},
		{name: "missing file", file: filepath.Join(e.Dir, "nope.yaml"), want: "nope.yaml: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.file
			if f == "" {
				f = e.WriteFile(tt.name+"/compose.yaml", tt.content)
			}
			r := e.Run("-f", f, "config")
			if r.Code != 1 {
				t.Errorf("exit %d, want 1", r.Code)
			}
			if r.Stdout != "" {
				t.Errorf("stdout: %q", r.Stdout)
			}
			if strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("stderr %q, want one line containing %q", r.Stderr, tt.want)
			}
		})
	}
}

func TestConfigOutput(t *testing.T) {
	e := harness.New(t)
	e.WriteFile("My-Stack/compose.yaml", `
services:
  web:
    image: "busybox:${TAG:-1.36}"
    depends_on: [db]
    ports: ["8080:80"]
  db:
    image: busybox
    volumes: [data:/data]
  tools:
    image: busybox
    profiles: [debug]
volumes:
  data: {}
`)
	e.WriteFile("My-Stack/.env", "TAG=1.37\n")
	e.Dir = filepath.Join(e.Dir, "My-Stack")
	if err := os.MkdirAll(filepath.Join(e.Dir, "deep", "er"), 0o755); err != nil {
		t.Fatal(err)
	}

	out := e.MustRun("config").Stdout
	for _, want := range []string{"name: my-stack", "image: busybox:1.37", "name: my-stack_default", "name: my-stack_data", "published: \"8080\""} {
		if !strings.Contains(out, want) {
			t.Errorf("config output lacks %q:\n%s", want, out)
		}
	}

	var doc struct {
		Name     string                     `json:"name"`
		Services map[string]json.RawMessage `json:"services"`
	}
	if err := json.Unmarshal([]byte(e.MustRun("config", "--format", "json").Stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Name != "my-stack" || len(doc.Services) != 2 {
		t.Errorf("json: name %q, %d services", doc.Name, len(doc.Services))
	}

	checks := []struct {
		args []string
		want string
	}{
		{[]string{"config", "--services"}, "db\nweb\n"},
		{[]string{"--profile", "debug", "config", "--services"}, "db\ntools\nweb\n"},
		{[]string{"config", "--volumes"}, "data\n"},
		{[]string{"config", "--networks"}, "default\n"},
		{[]string{"config", "--profiles"}, "debug\n"},
		{[]string{"-p", "other", "config", "--volumes"}, "data\n"},
	}
	for _, c := range checks {
		if got := e.MustRun(c.args...).Stdout; got != c.want {
			t.Errorf("berth %s = %q, want %q", strings.Join(c.args, " "), got, c.want)
		}
	}

	// Discovery climbs to the parent directories; the hash is stable and
	// changes with the service's definition.
	e.Dir = filepath.Join(e.Dir, "deep", "er")
	h1 := e.MustRun("config", "--hash", "web").Stdout
	if !strings.HasPrefix(h1, "web ") || len(strings.TrimSpace(h1)) != len("web ")+64 {
		t.Fatalf("--hash web = %q", h1)
	}
	e.Environ = []string{"TAG=2"}
	if h2 := e.MustRun("config", "--hash", "web").Stdout; h2 == h1 {
		t.Error("hash unchanged after the image changed")
	}
	if got := e.MustRun("config", "--hash", "*").Stdout; strings.Count(got, "\n") != 2 {
		t.Errorf("--hash '*' = %q", got)
	}
	e.Environ = []string{"COMPOSE_PROJECT_NAME=fromenv"}
	if out := e.MustRun("config").Stdout; !strings.Contains(out, "name: fromenv") {
		t.Error("COMPOSE_PROJECT_NAME ignored")
	}
}

func TestVersion(t *testing.T) {
	e := harness.New(t)
	if out := e.MustRun("version").Stdout; !strings.HasPrefix(out, "berth version ") {
		t.Errorf("version = %q", out)
	}
}

// TestConfigKeepsDoubleDollar: a literal $ written $$ stays $$ in config's
// yaml and json, so the output reads back the same, while the container
// gets a single $.
func TestConfigKeepsDoubleDollar(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
services:
  app:
    image: busybox:latest
    command: ["sh", "-c", "echo $$GREETING-$${GREETING}"]
    environment:
      GREETING: "hi$$there"
`)
	yml := e.MustRun("config").Stdout
	for _, want := range []string{"echo $$GREETING-$${GREETING}", "GREETING: hi$$there"} {
		if !strings.Contains(yml, want) {
			t.Errorf("config yaml lacks %q:\n%s", want, yml)
		}
	}
	js := e.MustRun("config", "--format", "json").Stdout
	if !strings.Contains(js, `"hi$$there"`) || !strings.Contains(js, `echo $$GREETING-$${GREETING}`) {
		t.Errorf("config json lost $$:\n%s", js)
	}
	// What config printed loads back to the same project.
	e.WriteFile("again.yaml", yml)
	if again := e.MustRun("-f", "again.yaml", "-p", "app", "config").Stdout; !strings.Contains(again, "GREETING: hi$$there") {
		t.Errorf("config of config output:\n%s", again)
	}
	if r := e.MustRun("run", "--rm", "-T", "app"); r.Stdout != "hi$there-hi$there\n" {
		t.Errorf("container printed %q, want a single $", r.Stdout)
	}
	e.MustRun("down")
}

// TestConfigSwitches: config's switches that show the file less processed.
func TestConfigSwitches(t *testing.T) {
	e := harness.New(t)
	e.WriteFile("ctx/Dockerfile", "FROM busybox:latest\n")
	e.WriteFile("compose.yaml", `
name: sw
services:
  web:
    image: "busybox:${TAG:-1}"
    command: echo $$HOME
    build: ./ctx
    env_file: [web.env]
`)
	e.WriteFile("web.env", "FROM_FILE=yes\n")
	e.Environ = []string{"TAG=7"}
	checks := []struct {
		args          []string
		want, notWant string
	}{
		{[]string{"config"}, "image: busybox:7", ""},
		{[]string{"config", "--no-interpolate"}, "image: busybox:${TAG:-1}", "busybox:7"},
		{[]string{"config", "--no-interpolate"}, "- $$HOME", "$$$$"},
		{[]string{"config", "--no-path-resolution"}, "context: ./ctx", e.Dir},
		{[]string{"config", "--no-normalize"}, "image: busybox:7", "sw_default"},
		{[]string{"config"}, "FROM_FILE: \"yes\"", ""},
		{[]string{"config", "--no-env-resolution"}, "web.env", "FROM_FILE"},
		{[]string{"config", "--no-consistency", "-q"}, "", "image"},
		{[]string{"config", "--environment"}, "TAG=7\n", ""},
		{[]string{"config", "--variables"}, "TAG    false      1", ""},
	}
	for _, c := range checks {
		out := e.MustRun(c.args...).Stdout
		if !strings.Contains(out, c.want) || c.notWant != "" && strings.Contains(out, c.notWant) {
			t.Errorf("berth %s: want %q and not %q in:\n%s", strings.Join(c.args, " "), c.want, c.notWant, out)
		}
	}
}
