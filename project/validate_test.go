package project

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadValues checks that every value docker refuses, and every name that
// would become a path or an /etc/hosts line, is refused at load time with
// the file and line of its key.
func TestBadValues(t *testing.T) {
	tests := []struct {
		name string
		svc  string // lines under services.web, indented by 4
		line int    // line of the key in the file
		want string
	}{
		{"stop_signal", "stop_signal: SIGFOO", 4, `invalid signal "SIGFOO"`},
		{"cpus", "cpus: -1", 4, "services.web.cpus: must not be negative"},
		{"cpu_shares", "cpu_shares: -1", 4, "services.web.cpu_shares: must not be less than 0"},
		{"mem_limit", "mem_limit: -5", 4, "services.web.mem_limit: must not be less than 0"},
		{"shm_size", "shm_size: -1", 4, "services.web.shm_size"},
		{"restart", "restart: sometimes", 4, `invalid restart policy "sometimes"`},
		{"on-failure", "restart: on-failure:-1", 4, `invalid restart policy "on-failure:-1"`},
		{"always with max", "restart: always:3", 4, `invalid restart policy "always:3"`},
		{"stop_grace_period", "stop_grace_period: -10s", 4, "services.web.stop_grace_period: must not be negative"},
		{"dns", "dns: not-an-ip", 4, `services.web.dns: "not-an-ip" is not an IP address`},
		{"dns list", "dns: [8.8.8.8, nope]", 4, `"nope" is not an IP address`},
		{"dns port", `dns: ["8.8.8.8:0"]`, 4, `"8.8.8.8:0" is not an IP address`},
		{"dns name and port", `dns: ["ns.example:53"]`, 4, `"ns.example:53" is not an IP address`},
		{"healthcheck", "healthcheck:\n      test: [CMD, 'true']\n      interval: -1s", 6, "services.web.healthcheck.interval"},
		{"deploy cpus", "deploy:\n      resources:\n        limits:\n          cpus: '-2'", 7, "deploy.resources.limits.cpus"},
		{"deploy condition", "deploy:\n      restart_policy:\n        condition: sometimes", 6, `invalid condition "sometimes"`},
		{"port range", `ports: ["1-65535:1-65535"]`, 4, "range of 65535 ports is larger than 1024"},
		{"long port range", "ports:\n      - target: 80\n        published: 1-5000", 4, "range of 5000 ports"},
		{"port target", `ports: ["8080:0"]`, 4, "services.web.ports"},
		{"container_name traversal", `container_name: "../../x"`, 4, `'../../x' does not match pattern`},
		{"container_name newline", `container_name: "a\nb"`, 4, "does not match pattern"},
		{"hostname newline", `hostname: "h\n10.0.0.1 evil"`, 4, "services.web.hostname"},
		{"hostname slash", `hostname: a/b`, 4, "services.web.hostname"},
		{"link", "links: [\"db:a\\nb\"]\n  db:\n    image: busybox", 4, "services.web.links"},
		{"extra_hosts name", `extra_hosts: ["evil\n1.2.3.4 x:10.0.0.1"]`, 4, "services.web.extra_hosts"},
		{"extra_hosts ip", `extra_hosts: ["db:not-an-ip"]`, 4, "services.web.extra_hosts"},
		{"alias", "networks:\n      default:\n        aliases: [\"a b\"]", 5, "services.web.networks.default"},
		{"image", "image: a//b", 3, "services.web.image"},
		{"service name", "stop_signal: TERM\n  ..:\n    image: busybox", 1, `service name ".."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := "services:\n  web:\n    image: busybox\n    " + tt.svc + "\n"
			if strings.HasPrefix(tt.svc, "image:") {
				content = "services:\n  web:\n    " + tt.svc + "\n"
			}
			dir := write(t, map[string]string{"compose.yaml": content})
			file := filepath.Join(dir, "compose.yaml")
			_, err := Load(context.Background(), Options{Files: []string{file}, Environ: []string{}})
			if err == nil {
				t.Fatalf("loaded %q", tt.svc)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not say %q", msg, tt.want)
			}
			if where := fmt.Sprintf("%s:%d: ", file, tt.line); !strings.HasPrefix(msg, where) {
				t.Errorf("error %q does not start with %q", msg, where)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is more than one line: %q", msg)
			}
		})
	}
}

func TestGoodValues(t *testing.T) {
	dir := write(t, map[string]string{"compose.yaml": `
services:
  web:
    image: localhost:5000/team/web:1.2
    container_name: my.web-1
    hostname: web.example
    stop_signal: SIGUSR1
    restart: on-failure:3
    stop_grace_period: 0s
    memswap_limit: -1
    pids_limit: -1
    dns: [8.8.8.8, "::1", "127.0.0.1:5353", "[::1]:53"]
    links: ["db:database"]
    extra_hosts: ["gw:host-gateway", "db.local:10.0.0.2"]
    ports: ["0:80", "8000-8010:8000-8010", "127.0.0.1:9000:90/udp"]
    networks:
      default:
        aliases: [www, www.local]
  db:
    image: busybox
    restart: unless-stopped
`})
	p := load(t, Options{Files: []string{filepath.Join(dir, "compose.yaml")}})
	m, err := p.Model()
	if err != nil {
		t.Fatal(err)
	}
	web, _ := m.Service("web")
	if got := web.Ports[0].Published; got != "" {
		t.Errorf("host port 0 is %q in the model, want \"\" (any free port)", got)
	}
}

func TestBadFiles(t *testing.T) {
	big := strings.Repeat("#", MaxFileSize+1)
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"include device", map[string]string{"compose.yaml": "include: [/dev/zero]\nservices:\n  web:\n    image: busybox\n"},
			"/dev/zero: not a regular file"},
		{"include list of objects", map[string]string{"compose.yaml": "include:\n  - path: /dev/zero\nservices:\n  web:\n    image: busybox\n"},
			"/dev/zero: not a regular file"},
		{"relative include through a nested file", map[string]string{
			"compose.yaml": "include: [sub/a.yaml]\nservices:\n  web:\n    image: busybox\n",
			"sub/a.yaml":   "include: [../../../../../../../../../../dev/zero]\nservices:\n  db:\n    image: busybox\n"},
			"not a regular file"},
		{"extends device", map[string]string{"compose.yaml": "services:\n  web:\n    extends:\n      file: /dev/zero\n      service: x\n"},
			"/dev/zero: not a regular file"},
		{"too big", map[string]string{"compose.yaml": "include: [big.yaml]\nservices:\n  web:\n    image: busybox\n", "big.yaml": big},
			"larger than the 16 MiB berth reads"},
		{"env_file device", map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    env_file: /dev/zero\n"},
			"compose.yaml:4: services.web.env_file: /dev/zero: not a regular file"},
		{"env_file too big", map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    env_file: [{path: big.env}]\n", "big.env": big},
			"services.web.env_file"},
		{"env_file missing", map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    env_file: [a.env]\n"},
			"compose.yaml:4: services.web.env_file: env file "},
		{"label_file missing", map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    label_file: a.labels\n"},
			"compose.yaml:4: services.web.label_file: label file "},
		{"label_file device", map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    label_file: /dev/zero\n"},
			"compose.yaml:4: services.web.label_file: /dev/zero: not a regular file"},
		{"include env_file device", map[string]string{"compose.yaml": "include:\n  - path: a.yaml\n    env_file: /dev/zero\nservices:\n  web:\n    image: busybox\n", "a.yaml": "services:\n  db:\n    image: busybox\n"},
			"/dev/zero: not a regular file"},
		{"include env_file list", map[string]string{"compose.yaml": "include:\n  - path: a.yaml\n    env_file: [/dev/null, /dev/zero]\nservices:\n  web:\n    image: busybox\n", "a.yaml": "services:\n  db:\n    image: busybox\n"},
			"/dev/zero: not a regular file"},
		{"dot env device", map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n", ".env": ""},
			".env: not a regular file"},
		{"compose-go panic", map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    configs: [{source: c, target: 1}]\nconfigs:\n  c:\n    content: x\n"},
			""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := write(t, tt.files)
			if _, ok := tt.files[".env"]; ok {
				// A .env that is a device, as a checked-out symlink may be.
				env := filepath.Join(dir, ".env")
				if err := os.Remove(env); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("/dev/zero", env); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() {
				_, err := Load(context.Background(), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, Environ: []string{}})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatal("load did not end")
			}
			if err == nil {
				t.Fatal("loaded")
			}
			var le *Error
			if !errors.As(err, &le) {
				t.Errorf("error %v is not a load error", err)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line saying %q", err, tt.want)
			}
		})
	}
	dir := write(t, map[string]string{})
	_, err := Load(context.Background(), Options{Files: []string{"/dev/zero"}, WorkDir: dir, Environ: []string{}})
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("-f /dev/zero: err = %v", err)
	}
}

// TestOptionalEnvFile: an env_file marked required: false may be missing.
func TestOptionalEnvFile(t *testing.T) {
	dir := write(t, map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    env_file: [{path: a.env, required: false}]\n"})
	if _, err := Load(context.Background(), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, Environ: []string{}}); err != nil {
		t.Fatalf("load: %v", err)
	}
}
