package supervisor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/project/model"
)

// TestCommand is seed 004's ENTRYPOINT × CMD table (004:2121-2131), with
// the image config as docker stores the shell forms (["/bin/sh", "-c", …]),
// plus compose's overrides.
func TestCommand(t *testing.T) {
	shEntry := []string{"/bin/sh", "-c", "exec_entry p1_entry"}
	execEntry := []string{"exec_entry", "p1_entry"}
	execCmd := []string{"exec_cmd", "p1_cmd"}
	shCmd := []string{"/bin/sh", "-c", "exec_cmd p1_cmd"}
	tests := []struct {
		name       string
		entrypoint []string
		cmd        []string
		svc        model.Service
		want       []string
	}{
		{"no entrypoint, no cmd", nil, nil, model.Service{}, nil},
		{"shell entrypoint, no cmd", shEntry, nil, model.Service{}, shEntry},
		{"exec entrypoint, no cmd", execEntry, nil, model.Service{}, execEntry},
		{"exec cmd", nil, execCmd, model.Service{}, execCmd},
		{"shell entrypoint ignores cmd", shEntry, execCmd, model.Service{}, append(append([]string{}, shEntry...), execCmd...)},
		{"exec entrypoint + exec cmd", execEntry, execCmd, model.Service{}, []string{"exec_entry", "p1_entry", "exec_cmd", "p1_cmd"}},
		{"shell cmd", nil, shCmd, model.Service{}, shCmd},
		{"exec entrypoint + shell cmd", execEntry, shCmd, model.Service{}, []string{"exec_entry", "p1_entry", "/bin/sh", "-c", "exec_cmd p1_cmd"}},
		{"service command replaces cmd", execEntry, execCmd, model.Service{Command: []string{"x"}}, []string{"exec_entry", "p1_entry", "x"}},
		{"service entrypoint drops the image's cmd", execEntry, execCmd, model.Service{Entrypoint: []string{"e"}}, []string{"e"}},
		{"service entrypoint and command", execEntry, execCmd, model.Service{Entrypoint: []string{"e"}, Command: []string{"c"}}, []string{"e", "c"}},
		{"empty service entrypoint clears it", execEntry, execCmd, model.Service{Entrypoint: []string{}, Command: []string{"c"}}, []string{"c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := command(&tt.svc, &image.Config{Entrypoint: tt.entrypoint, Cmd: tt.cmd})
			if tt.want == nil {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	got := environment([]string{"PATH=/bin", "A=1", "B=2"}, []string{"B=3", "C=4"})
	want := []string{"PATH=/bin", "A=1", "B=3", "C=4"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRestartPolicy(t *testing.T) {
	tests := []struct {
		policy string
		state  State
		want   bool
	}{
		{"no", State{ExitCode: 1}, false},
		{"", State{ExitCode: 1}, false},
		{"always", State{ExitCode: 0}, true},
		{"always", State{ExitCode: 1, StoppedByUser: true}, false},
		{"unless-stopped", State{ExitCode: 137}, true},
		{"unless-stopped", State{ExitCode: 0, StoppedByUser: true}, false},
		{"on-failure", State{ExitCode: 0}, false},
		{"on-failure", State{ExitCode: 2}, true},
		{"on-failure:3", State{ExitCode: 1, RestartCount: 2}, true},
		{"on-failure:3", State{ExitCode: 1, RestartCount: 3}, false},
		{"on-failure", State{ExitCode: -1, ExitUnknown: true}, true},
	}
	for _, tt := range tests {
		p, err := parseRestart(tt.policy)
		if err != nil {
			t.Fatalf("%q: %v", tt.policy, err)
		}
		if got := p.shouldRestart(tt.state); got != tt.want {
			t.Errorf("%q with %+v: restart %v, want %v", tt.policy, tt.state, got, tt.want)
		}
	}
	for _, bad := range []string{"sometimes", "on-failure:x", "always:2"} {
		if _, err := parseRestart(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBackoff(t *testing.T) {
	d := time.Duration(0)
	var got []time.Duration
	for i := 0; i < 12; i++ {
		d = nextBackoff(d, time.Second)
		got = append(got, d)
	}
	if got[0] != 100*time.Millisecond || got[1] != 200*time.Millisecond || got[2] != 400*time.Millisecond || got[11] != time.Minute {
		t.Errorf("backoff: %v", got)
	}
	if nextBackoff(time.Minute, 10*time.Second) != 100*time.Millisecond {
		t.Error("a run of 10 s does not reset the backoff")
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "int": syscall.SIGINT, "HUP": syscall.SIGHUP, "9": syscall.SIGKILL} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("%q: %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"SIGNOPE", "0", "99"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestExpandPorts(t *testing.T) {
	svc := &model.Service{Name: "web", Ports: []model.Port{
		{Published: "8080", Target: 80, Protocol: "tcp"},
		{HostIP: "127.0.0.1", Published: "9000-9001", Target: 90, Protocol: "udp"},
		{Target: 443},
	}}
	got, err := expandPorts(svc)
	if err != nil {
		t.Fatal(err)
	}
	want := []PortBinding{
		{HostPort: 8080, Target: 80, Protocol: "tcp"},
		{HostIP: "127.0.0.1", HostPort: 9000, Target: 90, Protocol: "udp"},
		{HostIP: "127.0.0.1", HostPort: 9001, Target: 90, Protocol: "udp"},
		{Target: 443, Protocol: "tcp"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if _, err := expandPorts(&model.Service{Ports: []model.Port{{Published: "9-1", Target: 1}}}); err == nil {
		t.Error("a reversed range was accepted")
	}
	if s := want[0].String(); s != "0.0.0.0:8080->80/tcp" {
		t.Errorf("binding string %q", s)
	}
}

func TestHealth(t *testing.T) {
	if healthConfig(nil) != nil || healthConfig(&model.Healthcheck{Test: []string{"NONE"}}) != nil || healthConfig(&model.Healthcheck{Test: []string{"CMD", "true"}, Disable: true}) != nil {
		t.Error("a disabled check is in force")
	}
	h := healthConfig(&model.Healthcheck{Test: []string{"CMD", "true"}})
	if h.Interval != 30*time.Second || h.Timeout != 30*time.Second || h.Retries != 3 || h.StartInterval != 5*time.Second {
		t.Errorf("docker's defaults: %+v", h)
	}
	for in, want := range map[string][]string{
		"CMD":       {"true"},
		"CMD-SHELL": {"/bin/sh", "-c", "test -f /x"},
	} {
		test := []string{in, "true"}
		if in == "CMD-SHELL" {
			test = []string{in, "test -f /x"}
		}
		if got := healthArgs(test); !reflect.DeepEqual(got, want) {
			t.Errorf("%v: %q", test, got)
		}
	}
}

func TestStartFailureCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("start x: %w", runtime.ErrCommandNotFound), 127},
		{fmt.Errorf("start x: %w", runtime.ErrCommandNotExecutable), 126},
		{errors.New("something else"), 128},
	} {
		if got := startFailureCode(tc.err); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestCheckProject(t *testing.T) {
	p := Paths{Root: "/r", RunRoot: "/run/x"}
	for name, ok := range map[string]bool{
		"app": true, "my_app-2": true,
		"": false, ".": false, "..": false, "../../../var/tmp/x": false, "a/b": false, "A": false, "a\x00": false,
	} {
		if err := p.CheckProject(name); (err == nil) != ok {
			t.Errorf("CheckProject(%q) = %v, want ok = %v", name, err, ok)
		}
	}
}

// A spawned supervisor waits for its spawner's first request rather than
// leaving 300 ms after it listens: on a slow machine the request comes
// later, and met a supervisor on its way out. Once served, or when nobody
// awaits it, it leaves when idle.
func TestWaitIdleAwaitsFirstRequest(t *testing.T) {
	for _, tc := range []struct {
		name     string
		awaiting bool
		request  bool // a request comes, and ends, 500 ms in
		leaves   bool
	}{
		{"spawner awaited", true, false, false},
		{"spawner served", true, true, true},
		{"nobody awaited", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Supervisor{idle: make(chan struct{}, 1), awaiting: tc.awaiting}
			s.checkIdle()
			if tc.request {
				go func() {
					time.Sleep(500 * time.Millisecond)
					s.mu.Lock()
					s.awaiting = false
					s.mu.Unlock()
					s.track(func() {})
				}()
			}
			// 3 s: well past the short grace, well before spawnWait.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err := s.waitIdle(ctx)
			if left := err == nil; left != tc.leaves {
				t.Errorf("left while idle: %v, want %v (err %v)", left, tc.leaves, err)
			}
		})
	}
}

func TestProbeWait(t *testing.T) {
	withPeriod := healthConfig(&model.Healthcheck{Test: []string{"CMD", "true"}, Interval: 10 * time.Second, StartInterval: time.Second, StartPeriod: time.Minute})
	noPeriod := healthConfig(&model.Healthcheck{Test: []string{"CMD", "true"}, Interval: 10 * time.Second, StartInterval: time.Second})
	for _, tc := range []struct {
		what     string
		h        *model.Healthcheck
		inStart  bool
		starting bool
		failures int
		want     time.Duration
	}{
		{"starting, in the start period", withPeriod, true, true, 0, time.Second},
		{"healthy within the start period", withPeriod, true, false, 0, 10 * time.Second},
		{"after the start period", withPeriod, false, true, 0, 10 * time.Second},
		{"no start period, not yet probed", noPeriod, false, true, 0, time.Second},
		{"no start period, failed once", noPeriod, false, true, 1, 10 * time.Second},
		{"no start period, healthy", noPeriod, false, false, 0, 10 * time.Second},
	} {
		if got := probeWait(tc.h, tc.inStart, tc.starting, tc.failures); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, got, tc.want)
		}
	}
}
