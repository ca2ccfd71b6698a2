package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// fields splits a table's output into lines of whitespace-separated cells.
func fields(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Fields(line))
	}
	return rows
}

func TestProjectVolumesAndImages(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.MustRun("volume", "create", "other") // not the project's
	e.WriteFile("compose.yaml", `
name: lst
services:
  app:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    volumes: [data:/data]
  side:
    image: busybox:latest
    command: ["sleep", "3600"]
    init: true
    volumes: [cache:/cache]
volumes:
  data: {}
  cache: {}
`)
	e.MustRun("up", "-d")
	t.Cleanup(func() {
		e.Run("down", "-v")
		e.Run("volume", "rm", "other")
	})

	// volumes
	got := fields(e.MustRun("volumes").Stdout)
	want := [][]string{{"DRIVER", "VOLUME", "NAME"}, {"local", "lst_cache"}, {"local", "lst_data"}}
	if !equalRows(got, want) {
		t.Errorf("volumes: %q", got)
	}
	if out := e.MustRun("volumes", "-q", "app").Stdout; out != "lst_data\n" {
		t.Errorf("volumes -q app: %q", out)
	}
	var v struct{ Name, Driver string }
	if err := json.Unmarshal([]byte(e.MustRun("volumes", "--format", "json", "side").Stdout), &v); err != nil || v.Name != "lst_cache" || v.Driver != "local" {
		t.Errorf("volumes --format json side: %+v, %v", v, err)
	}
	if r := e.Run("volumes", "nosuch"); r.Code != 1 || !strings.Contains(r.Stderr, "no such service: nosuch") {
		t.Errorf("volumes of an unknown service: exit %d, %q", r.Code, r.Stderr)
	}
	// Without the compose file, -p names the project.
	dir := e.Dir
	e.Dir = t.TempDir()
	if out := e.MustRun("-p", "lst", "volumes", "-q").Stdout; out != "lst_cache\nlst_data\n" {
		t.Errorf("-p lst volumes -q: %q", out)
	}
	if out := e.MustRun("-p", "lst", "volumes", "-q", "app").Stdout; out != "lst_data\n" {
		t.Errorf("-p lst volumes -q app: %q", out)
	}
	e.Dir = dir

	// images
	id := strings.TrimSpace(e.MustRun("image", "inspect", "-f", "{{.Id}}", "busybox").Stdout)
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("image id %q", id)
	}
	short := strings.TrimPrefix(id, "sha256:")[:12]
	got = fields(e.MustRun("images").Stdout)
	if len(got) != 3 || strings.Join(got[0], " ") != "CONTAINER REPOSITORY TAG IMAGE ID SIZE" {
		t.Fatalf("images: %q", got)
	}
	for i, name := range []string{"lst-app-1", "lst-side-1"} {
		row := got[i+1]
		if len(row) < 5 || row[0] != name || row[1] != "busybox" || row[2] != "latest" || row[3] != short {
			t.Errorf("images row %d: %q", i+1, row)
		}
	}
	if out := e.MustRun("images", "-q").Stdout; out != strings.TrimPrefix(id, "sha256:")+"\n" {
		t.Errorf("images -q: %q", out)
	}
	var imgs []struct {
		ID, ContainerName, Repository, Tag string
		Size                               int64
	}
	if err := json.Unmarshal([]byte(e.MustRun("images", "--format", "json", "side").Stdout), &imgs); err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].ContainerName != "lst-side-1" || imgs[0].ID != id || imgs[0].Repository != "busybox" || imgs[0].Size <= 0 {
		t.Errorf("images --format json side: %+v", imgs)
	}

	e.MustRun("down", "-v")
	if out := e.MustRun("volumes", "-q").Stdout; out != "" {
		t.Errorf("volumes after down -v: %q", out)
	}
	if got := fields(e.MustRun("images").Stdout); len(got) != 1 {
		t.Errorf("images after down: %q", got)
	}
}

func equalRows(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], " ") != strings.Join(b[i], " ") {
			return false
		}
	}
	return true
}
