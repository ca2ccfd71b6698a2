package supervisor

import "testing"

func waitRec(name, status, health string, code int) Record {
	r := Record{Name: name}
	r.State.Status, r.State.Health, r.State.ExitCode = status, health, code
	return r
}

func TestStoppedState(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []Record
		done bool
		code int
	}{
		{"no container", nil, true, 0},
		{"one running", []Record{waitRec("a", StatusRunning, "", 0)}, false, 0},
		{"all exited: the first's code", []Record{waitRec("a", StatusExited, "", 3), waitRec("b", StatusExited, "", 0)}, true, 3},
		{"dead counts as stopped", []Record{waitRec("a", StatusDead, "", 0)}, true, 0},
		{"one still running", []Record{waitRec("a", StatusExited, "", 1), waitRec("b", StatusRunning, "", 0)}, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, code := stoppedState(tc.recs)
			if done != tc.done || code != tc.code {
				t.Errorf("got %v %d, want %v %d", done, code, tc.done, tc.code)
			}
		})
	}
}

func TestReadyState(t *testing.T) {
	for _, tc := range []struct {
		name    string
		recs    []Record
		ready   bool
		wantErr bool
	}{
		{"running without health check", []Record{waitRec("a", StatusRunning, "", 0)}, true, false},
		{"healthy", []Record{waitRec("a", StatusRunning, "healthy", 0)}, true, false},
		{"health starting", []Record{waitRec("a", StatusRunning, "starting", 0)}, false, false},
		{"still created", []Record{waitRec("a", StatusCreated, "", 0)}, false, false},
		{"exited 0 is done", []Record{waitRec("a", StatusExited, "", 0)}, true, false},
		{"exited non-zero fails", []Record{waitRec("a", StatusExited, "", 2)}, false, true},
		{"unhealthy fails", []Record{waitRec("a", StatusRunning, "unhealthy", 0), waitRec("b", StatusCreated, "", 0)}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready, err := readyState(tc.recs)
			if ready != tc.ready || (err != nil) != tc.wantErr {
				t.Errorf("got %v %v, want %v error %v", ready, err, tc.ready, tc.wantErr)
			}
		})
	}
}
