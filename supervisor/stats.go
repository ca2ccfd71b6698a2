package supervisor

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/berthrun/berth/engine/runtime"
)

// ContainerStats is one sample of a container's resource use, for stats.
type ContainerStats struct {
	ID      string        `json:"id"`
	Name    string        `json:"name"`
	Service string        `json:"service"`
	Running bool          `json:"running"`
	Time    time.Time     `json:"time"`
	Stats   runtime.Stats `json:"stats"`
}

// serveStats answers GET /stats with a sample of every container.
func (s *Supervisor) serveStats(w http.ResponseWriter, _ *http.Request) {
	out := []ContainerStats{}
	for _, c := range s.list() {
		c.mu.Lock()
		ctr, r := c.ctr, c.rec
		cs := ContainerStats{ID: r.ID, Name: r.Name, Service: r.Service, Running: ctr != nil, Time: time.Now()}
		c.mu.Unlock()
		if ctr != nil {
			if st, err := ctr.Stats(); err == nil {
				cs.Stats = st
			}
		}
		out = append(out, cs)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// Stats samples the resource use of the project's containers.
func (c *Client) Stats(ctx context.Context) ([]ContainerStats, error) {
	resp, err := c.do(ctx, "GET", "/stats", nil)
	if err != nil {
		return nil, c.connErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, respError(resp)
	}
	var out []ContainerStats
	return out, json.NewDecoder(resp.Body).Decode(&out)
}
