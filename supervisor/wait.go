package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/berthrun/berth/internal/errdefs"
)

// Conditions a WaitRequest waits for.
const (
	// WaitStopped: every container of the services has exited (`wait`).
	WaitStopped = "stopped"
	// WaitReady: every container is running and, where it has a health
	// check, healthy, or has exited 0 (`up --wait`).
	WaitReady = "ready"
)

// WaitRequest asks the supervisor to answer once its containers meet a
// condition. It is answered on the supervisor's own state changes, not by
// polling records, and takes no operation lock: ups and downs go on.
type WaitRequest struct {
	Condition string   `json:"condition"`
	Services  []string `json:"services,omitempty"` // none: all
}

// stoppedState is WaitStopped's check over the records of the services
// waited for: done when none is still running (or created, paused...), with
// the exit code of the first exited one in recs' order, as `wait` prints.
func stoppedState(recs []Record) (done bool, code int) {
	code = -1
	done = true
	for _, r := range recs {
		switch r.State.Status {
		case StatusExited, StatusDead:
			if code < 0 {
				code = r.State.ExitCode
			}
		default:
			done = false
		}
	}
	return done, max(code, 0)
}

// readyState is WaitReady's check: a container unhealthy or exited non-zero
// fails the wait at once.
func readyState(recs []Record) (bool, error) {
	ready := true
	for _, r := range recs {
		switch {
		case r.State.Health == "unhealthy":
			return false, fmt.Errorf("container %s is unhealthy", r.Name)
		case r.State.Status == StatusExited && r.State.ExitCode != 0:
			return false, fmt.Errorf("container %s exited (%d)", r.Name, r.State.ExitCode)
		case r.State.Status != StatusRunning && r.State.Status != StatusExited:
			ready = false
		case r.State.Health == "starting":
			ready = false
		}
	}
	return ready, nil
}

// wait blocks until req's condition holds; for WaitStopped it returns the
// exit code `wait` reports. The first exit code seen is kept across
// changes: it is the first container to have stopped.
func (s *Supervisor) wait(ctx context.Context, req WaitRequest) (int, error) {
	if req.Condition != WaitStopped && req.Condition != WaitReady {
		return 0, fmt.Errorf("wait: unknown condition %q", req.Condition)
	}
	first := -1
	for {
		changed := s.changes()
		var recs []Record
		for _, c := range s.list() {
			if len(req.Services) == 0 || slices.Contains(req.Services, c.rec.Service) {
				recs = append(recs, c.record())
			}
		}
		if req.Condition == WaitReady {
			ok, err := readyState(recs)
			if err != nil || ok {
				return 0, err
			}
		} else {
			done, code := stoppedState(recs)
			if first < 0 && anyExited(recs) {
				first = code
			}
			if done {
				return max(first, 0), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

func anyExited(recs []Record) bool {
	for _, r := range recs {
		if r.State.Status == StatusExited || r.State.Status == StatusDead {
			return true
		}
	}
	return false
}

// serveWait answers a WaitRequest with one final message whose event
// carries the exit code.
func (s *Supervisor) serveWait(w http.ResponseWriter, r *http.Request) {
	var req WaitRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), statusOf(errdefs.ErrInvalidArgument))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flush(w)
	code, err := s.wait(r.Context(), req)
	m := message{Done: true, Event: &Event{Action: "wait", ExitCode: code}}
	if err != nil {
		m.Error, m.Kind = err.Error(), errdefs.Kind(err)
	}
	_ = json.NewEncoder(w).Encode(m)
	flush(w)
}

// Wait blocks until the project's containers (of services, all when none)
// meet condition (WaitStopped, WaitReady); for WaitStopped it returns the
// exit code of the first container that stopped.
func (c *Client) Wait(ctx context.Context, condition string, services []string) (int, error) {
	code := 0
	err := c.stream(ctx, "/wait", WaitRequest{Condition: condition, Services: services}, func(e Event) {
		if e.Action == "wait" {
			code = e.ExitCode
		}
	})
	return code, err
}
