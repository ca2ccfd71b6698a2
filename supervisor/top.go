package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/berthrun/berth/engine/runtime"
)

// TopResult is one running container's processes.
type TopResult struct {
	Name      string            `json:"name"`
	Processes []runtime.Process `json:"processes"`
}

// top lists the processes of the running containers of services (all when
// none), in the containers' order.
func (s *Supervisor) top(services []string) ([]TopResult, error) {
	out := []TopResult{}
	for _, c := range s.list() {
		if len(services) > 0 && !slices.Contains(services, c.rec.Service) {
			continue
		}
		c.mu.Lock()
		ctr, name, status := c.ctr, c.rec.Name, c.rec.State.Status
		c.mu.Unlock()
		if ctr == nil || status != StatusRunning {
			continue
		}
		procs, err := ctr.Top()
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", name, err)
		}
		out = append(out, TopResult{Name: name, Processes: procs})
	}
	return out, nil
}

func (s *Supervisor) serveTop(w http.ResponseWriter, r *http.Request) {
	res, err := s.top(r.URL.Query()["service"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// Top lists the processes of the project's running containers (of
// services, all when none).
func (c *Client) Top(ctx context.Context, services []string) ([]TopResult, error) {
	q := url.Values{"service": services}
	resp, err := c.do(ctx, "GET", "/top?"+q.Encode(), nil)
	if err != nil {
		return nil, c.connErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errorOfStatus(resp)
	}
	var res []TopResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, fmt.Errorf("reading the supervisor's answer: %w", err)
	}
	return res, nil
}
