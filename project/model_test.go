package project

import (
	"github.com/berthrun/berth/project/model"

	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestModel(t *testing.T) {
	dir := write(t, map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo hi"]
    entrypoint: []
    environment: [A=1, UNSET]
    healthcheck:
      test: ["CMD-SHELL", "true"]
      interval: 1s
      start_interval: 200ms
      retries: 4
    stop_grace_period: 3s
    stop_signal: SIGINT
    ulimits:
      nofile: {soft: 100, hard: 200}
      nproc: 50
    ports: ["8080:80", "127.0.0.1::90/udp"]
    depends_on:
      db: {condition: service_healthy, restart: true}
    deploy:
      replicas: 2
      resources: {limits: {memory: 64M, pids: 100, cpus: "0.5"}}
    init: true
    extra_hosts: ["h:host-gateway"]
    networks:
      back: {aliases: [www], ipv4_address: 10.5.0.9}
      default: {}
  db:
    image: busybox
    volumes: ["./x:/x:ro"]
networks:
  back:
    ipam:
      config: [{subnet: 10.5.0.0/24}]
`})
	p := load(t, Options{Files: []string{filepath.Join(dir, "compose.yaml")}, Name: "demo"})
	m, err := p.Model()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back model.Model
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(&back)
	if string(b) != string(b2) {
		t.Fatalf("model does not survive JSON:\n%s\n%s", b, b2)
	}
	if v := back.Services[0].Volumes[0]; !v.CreateHostPath || !v.ReadOnly || !v.HasBind {
		t.Errorf("a short-syntax bind must keep create_host_path through JSON: %+v", v)
	}
	if db := back.Services[0]; db.Command != nil || db.Entrypoint != nil {
		t.Errorf("unset command/entrypoint must stay nil (image defaults): %#v %#v", db.Command, db.Entrypoint)
	}
	web, ok := m.Service("web")
	if !ok {
		t.Fatal("no web")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"replicas", web.Replicas, 2},
		{"command", web.Command, []string{"sh", "-c", "echo hi"}},
		{"entrypoint cleared", web.Entrypoint != nil && len(web.Entrypoint) == 0, true},
		{"environment", web.Environment, []string{"A=1"}},
		{"grace", web.StopGracePeriod, 3 * time.Second},
		{"health", *web.Healthcheck, model.Healthcheck{Test: []string{"CMD-SHELL", "true"}, Interval: time.Second, StartInterval: 200 * time.Millisecond, Retries: 4}},
		{"ulimits", web.Ulimits, map[string]model.Ulimit{"nofile": {Soft: 100, Hard: 200}, "nproc": {Soft: 50, Hard: 50}}},
		{"memory", web.Resources.MemoryBytes, int64(64 << 20)},
		{"cpus", web.Resources.NanoCPUs, int64(5e8)},
		{"pids", web.Resources.PidsLimit, int64(100)},
		{"ports", web.Ports, []model.Port{{Published: "8080", Target: 80, Protocol: "tcp"}, {HostIP: "127.0.0.1", Target: 90, Protocol: "udp"}}},
		{"depends_on", web.DependsOn, map[string]model.Dependency{"db": {Condition: "service_healthy", Required: true, Restart: true}}},
		{"init", web.Init, true},
		{"extra_hosts", web.ExtraHosts, []string{"h:host-gateway"}},
		{"networks", web.Networks, []model.NetworkAttachment{{Key: "back", Name: "demo_back", Aliases: []string{"www"}, IPv4: "10.5.0.9"}, {Key: "default", Name: "demo_default"}}},
		{"subnet", m.Networks["back"].Subnet, "10.5.0.0/24"},
		{"db grace default", m.Services[0].StopGracePeriod, model.DefaultStopGracePeriod},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}
