package project

import (
	"context"
	"github.com/berthrun/berth/project/model"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// write creates files (name -> content) under a new temporary directory.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func load(t *testing.T, o Options) *Project {
	t.Helper()
	if o.Environ == nil {
		o.Environ = []string{}
	}
	p, err := Load(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNamesAndDiscovery(t *testing.T) {
	dir := write(t, map[string]string{
		"My App/compose.yaml": `
services:
  web:
    image: busybox
    volumes: [data:/data, logs:/logs]
  db:
    image: busybox
    container_name: the-db
volumes:
  data: {}
  logs:
    external: true
    name: shared-logs
networks:
  back: {}
`,
		"My App/compose.override.yaml": "services:\n  web:\n    environment: [FROM_OVERRIDE=1]\n",
		"My App/sub/dir/.keep":         "",
	})
	// Discovery climbs from a subdirectory to the project's directory and
	// picks up the override file.
	p := load(t, Options{WorkDir: filepath.Join(dir, "My App", "sub", "dir")})
	if p.Name != "myapp" {
		t.Errorf("project name = %q, want myapp (directory name normalised)", p.Name)
	}
	if got := *p.Services["web"].Environment["FROM_OVERRIDE"]; got != "1" {
		t.Errorf("override not merged: %q", got)
	}
	m, err := p.Model()
	if err != nil {
		t.Fatal(err)
	}
	web, _ := m.Service("web")
	db, _ := m.Service("db")
	if got := model.ContainerName(p.Name, web, 2); got != "myapp-web-2" {
		t.Errorf("container name = %q", got)
	}
	if got := model.ContainerName(p.Name, db, 1); got != "the-db" {
		t.Errorf("container_name = %q", got)
	}
	if got := p.VolumeName("data"); got != "myapp_data" {
		t.Errorf("volume name = %q", got)
	}
	if got := p.VolumeName("logs"); got != "shared-logs" {
		t.Errorf("external volume name = %q", got)
	}
	if got := p.NetworkName("default"); got != "myapp_default" {
		t.Errorf("default network = %q", got)
	}
}

func TestProjectNamePrecedence(t *testing.T) {
	dir := write(t, map[string]string{
		"compose.yaml": "name: fromfile\nservices:\n  a:\n    image: x\n",
	})
	f := []string{filepath.Join(dir, "compose.yaml")}
	if p := load(t, Options{Files: f}); p.Name != "fromfile" {
		t.Errorf("name: key ignored: %q", p.Name)
	}
	if p := load(t, Options{Files: f, Environ: []string{"COMPOSE_PROJECT_NAME=fromenv"}}); p.Name != "fromenv" {
		t.Errorf("COMPOSE_PROJECT_NAME ignored: %q", p.Name)
	}
	if p := load(t, Options{Files: f, Name: "flag", Environ: []string{"COMPOSE_PROJECT_NAME=fromenv"}}); p.Name != "flag" {
		t.Errorf("-p does not win: %q", p.Name)
	}
	if _, err := Load(context.Background(), Options{Files: f, Name: "Bad Name", Environ: []string{}}); err == nil || !strings.Contains(err.Error(), `invalid project name "Bad Name"`) {
		t.Errorf("bad -p accepted: %v", err)
	}
}

func TestInterpolationEnvFilesAndProfiles(t *testing.T) {
	dir := write(t, map[string]string{
		"compose.yaml": `
services:
  web:
    image: "busybox:${TAG:-1.36}"
    env_file: [web.env]
    environment:
      GREETING: "${GREETING}"
  debug:
    image: busybox
    profiles: [debug]
`,
		".env":    "GREETING=hello from dotenv\n",
		"web.env": "FROM_FILE=yes\n",
		"alt.env": "GREETING=hello from alt\nTAG=2\n",
	})
	f := []string{filepath.Join(dir, "compose.yaml")}
	p := load(t, Options{Files: f})
	web := p.Services["web"]
	if web.Image != "busybox:1.36" {
		t.Errorf("default not applied: %q", web.Image)
	}
	if *web.Environment["GREETING"] != "hello from dotenv" || *web.Environment["FROM_FILE"] != "yes" {
		t.Errorf(".env / env_file not applied: %v", web.Environment)
	}
	if _, ok := p.Services["debug"]; ok {
		t.Error("service of an inactive profile was loaded")
	}
	p = load(t, Options{Files: f, EnvFiles: []string{filepath.Join(dir, "alt.env")}, Profiles: []string{"debug"}})
	if p.Services["web"].Image != "busybox:2" || *p.Services["web"].Environment["GREETING"] != "hello from alt" {
		t.Errorf("--env-file not applied: %v", p.Services["web"])
	}
	if _, ok := p.Services["debug"]; !ok {
		t.Error("--profile debug did not enable debug")
	}
	p = load(t, Options{Files: f, Environ: []string{"COMPOSE_PROFILES=debug", "TAG=3"}})
	if _, ok := p.Services["debug"]; !ok || p.Services["web"].Image != "busybox:3" {
		t.Error("COMPOSE_PROFILES or the process environment ignored")
	}
	if got := strings.Join(p.AllProfiles(), ","); got != "debug" {
		t.Errorf("profiles = %q", got)
	}
}

func TestComposeFileEnvAndMultipleFiles(t *testing.T) {
	dir := write(t, map[string]string{
		"a.yaml": "services:\n  web:\n    image: one\n    environment: [A=1]\n",
		"b.yaml": "services:\n  web:\n    image: two\n",
	})
	p := load(t, Options{WorkDir: dir, Environ: []string{"COMPOSE_FILE=" + filepath.Join(dir, "a.yaml") + ":" + filepath.Join(dir, "b.yaml")}})
	if p.Services["web"].Image != "two" || *p.Services["web"].Environment["A"] != "1" {
		t.Errorf("COMPOSE_FILE files not merged in order: %+v", p.Services["web"])
	}
	p = load(t, Options{WorkDir: dir, Files: []string{"b.yaml", "a.yaml"}})
	if p.Services["web"].Image != "one" {
		t.Errorf("-f files not merged in order: %q", p.Services["web"].Image)
	}
}

func TestLoadErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"malformed port (seed 001:414)", "services:\n  web:\n    image: x\n    ports:\n      - \"80\":\"80\"\n", `compose.yaml:5:13: did not find expected '-' indicator`},
		{"unknown key", "services:\n  web:\n    image: x\n    imagee: y\n", `compose.yaml:4: unknown key "imagee" in services.web`},
		{"bad interpolation", "services:\n  web:\n    image: \"x:${TAG:?set TAG}\"\n", `compose.yaml:3: invalid interpolation in services.web.image: required variable TAG is missing a value: set TAG`},
		{"cycle", "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n", `compose.yaml:4: dependency cycle detected: a -> b -> a`},
		{"unknown dependency", "services:\n  a:\n    image: x\n    depends_on: [nope]\n", `compose.yaml:4: service "a" depends on undefined service "nope"`},
		{"duplicate key", "services:\n  a:\n    image: x\n    image: y\n", `compose.yaml:4: mapping key "image" already defined at line 3`},
		{"container_name with replicas", "services:\n  a:\n    image: x\n    container_name: one\n    scale: 2\n", `compose.yaml:4: services.a: container_name allows one container only`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := write(t, map[string]string{"compose.yaml": tt.content})
			_, err := Load(context.Background(), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, Environ: []string{}})
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line containing %q", err, tt.want)
			}
		})
	}
	_, err := Load(context.Background(), Options{Files: []string{"/nonexistent/compose.yaml"}, Environ: []string{}})
	if err == nil || err.Error() != "/nonexistent/compose.yaml: no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
}

func TestServiceHash(t *testing.T) {
	dir := write(t, map[string]string{
		"a.yaml": "services:\n  web:\n    image: x\n    environment: [A=1]\n  db:\n    image: y\n",
		"b.yaml": "services:\n  web:\n    image: x\n    environment: [A=1]\n    scale: 3\n    depends_on: [db]\n    pull_policy: always\n  db:\n    image: y\n",
		"c.yaml": "services:\n  web:\n    image: x\n    environment: [A=2]\n  db:\n    image: y\n",
	})
	hash := func(file string) string {
		p := load(t, Options{Files: []string{filepath.Join(dir, file)}, Name: "p"})
		h, err := ServiceHash(p.Services["web"])
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a, b, c := hash("a.yaml"), hash("b.yaml"), hash("c.yaml")
	if a != b {
		t.Error("scale, depends_on or pull_policy changed the config hash")
	}
	if a == c {
		t.Error("an environment change kept the config hash")
	}
	if a != hash("a.yaml") {
		t.Error("hash is not stable")
	}
}

// TestCheckedInputs: a project loads the same with its validation
// remembered, and a change to the file or to a variable it names is
// validated again.
func TestCheckedInputs(t *testing.T) {
	dir := write(t, map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    ports: [\"${PORT}:80\"]\n"})
	checkedDir := filepath.Join(t.TempDir(), "checked")
	o := Options{WorkDir: dir, CheckedDir: checkedDir, Environ: []string{"PORT=8080", "OTHER=1"}}
	first := load(t, o)
	if ents, _ := os.ReadDir(checkedDir); len(ents) != 1 {
		t.Fatalf("%d verdicts kept, want 1", len(ents))
	}
	o.Environ = []string{"PORT=8080", "OTHER=2"} // a variable the file does not name
	second := load(t, o)
	if a, b := first.Services["web"].Ports, second.Services["web"].Ports; len(a) != 1 || len(b) != 1 || a[0].Published != "8080" || b[0].Published != "8080" {
		t.Errorf("ports %v, then %v", a, b)
	}
	o.Environ = []string{"PORT=not-a-port"}
	if _, err := Load(context.Background(), o); err == nil {
		t.Error("a bad value of a variable the file names loaded")
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("services:\n  web:\n    image: busybox\n    bogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Environ = []string{"PORT=8080", "OTHER=1"}
	if _, err := Load(context.Background(), o); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("an invalid file after a valid one: %v", err)
	}
}
