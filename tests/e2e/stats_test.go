package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// TestStats: stats --no-stream --format json reports each running
// container with docker's keys, its memory limit equal to mem_limit; the
// table has docker's columns.
func TestStats(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: stats
services:
  app:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    mem_limit: 64m
  other:
    image: busybox
    command: ["true"]
`)
	e.MustRun("up", "-d")
	e.MustRun("wait", "other")
	r := e.MustRun("stats", "--no-stream", "--format", "json")
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 1 {
		t.Fatalf("stats of running containers: %q", r.Stdout)
	}
	var row map[string]string
	if err := json.Unmarshal([]byte(lines[0]), &row); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name", "NetIO", "PIDs"} {
		if _, ok := row[k]; !ok {
			t.Errorf("no %s in %v", k, row)
		}
	}
	if row["Name"] != "stats-app-1" || !strings.HasSuffix(row["MemUsage"], " / 64MiB") || row["PIDs"] == "0" {
		t.Errorf("stats row: %v", row)
	}
	r = e.MustRun("stats", "-a", "--no-stream")
	if !strings.Contains(r.Stdout, "CONTAINER ID   NAME") || !strings.Contains(r.Stdout, "MEM USAGE / LIMIT") || !strings.Contains(r.Stdout, "stats-other-1") {
		t.Errorf("stats table: %q", r.Stdout)
	}
	r = e.MustRun("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "app")
	if !strings.HasPrefix(r.Stdout, "stats-app-1 ") {
		t.Errorf("stats template: %q", r.Stdout)
	}
	e.MustRun("down", "-t", "1")
}
