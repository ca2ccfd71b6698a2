package supervisor

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/berthrun/berth/project/model"
)

// UpRequest asks the supervisor to converge the project to Model.
type UpRequest struct {
	Model         model.Model `json:"model"`
	Services      []string    `json:"services,omitempty"` // only these (and their dependencies)
	NoDeps        bool        `json:"no_deps,omitempty"`
	ForceRecreate bool        `json:"force_recreate,omitempty"`
	// AlwaysRecreateDeps recreates the dependencies of the services asked for.
	AlwaysRecreateDeps bool           `json:"always_recreate_deps,omitempty"`
	NoRecreate         bool           `json:"no_recreate,omitempty"`
	NoStart            bool           `json:"no_start,omitempty"`
	RemoveOrphans      bool           `json:"remove_orphans,omitempty"`
	Timeout            *time.Duration `json:"timeout,omitempty"` // for stopping what is recreated
	Scale              map[string]int `json:"scale,omitempty"`
	// RenewAnonVolumes (-V) gives recreated containers new anonymous
	// volumes instead of their predecessors'.
	RenewAnonVolumes bool `json:"renew_anon_volumes,omitempty"`
}

// DownRequest asks the supervisor to stop and remove the model.
type DownRequest struct {
	Timeout       *time.Duration `json:"timeout,omitempty"`
	RemoveOrphans bool           `json:"remove_orphans,omitempty"`
	// Services known to the current compose file; with RemoveOrphans unset,
	// containers of other services are left alone (and reported).
	Services []string `json:"services,omitempty"`
	// Volumes (-v) removes the project's named volumes (VolumeNames, or all
	// volumes labelled with the project when the file is not at hand) and
	// the containers' anonymous volumes. External volumes are never removed.
	Volumes     bool     `json:"volumes,omitempty"`
	VolumeNames []string `json:"volume_names,omitempty"`
	// NetworkNames are the project's networks from the compose file; those
	// of the removed containers are released too.
	NetworkNames []string `json:"network_names,omitempty"`
}

// ContainersRequest selects containers for start, stop, restart, kill, rm,
// pause and unpause.
type ContainersRequest struct {
	Services []string       `json:"services,omitempty"` // none: all
	Index    int            `json:"index,omitempty"`    // a replica number, 0 for all
	Timeout  *time.Duration `json:"timeout,omitempty"`
	Signal   string         `json:"signal,omitempty"`
	Force    bool           `json:"force,omitempty"`
	Stop     bool           `json:"stop,omitempty"`
	Volumes  bool           `json:"volumes,omitempty"` // rm -v: anonymous volumes too
}

// message is one line of a streamed response.
type message struct {
	Event *Event `json:"event,omitempty"`
	Done  bool   `json:"done,omitempty"`
	Error string `json:"error,omitempty"`
}

func (s *Supervisor) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ps", func(w http.ResponseWriter, r *http.Request) {
		s.track(func() {
			recs := []Record{}
			for _, c := range s.list() {
				recs = append(recs, c.record())
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(recs)
		})
	})
	mux.HandleFunc("POST /up", streamed(s, func(ctx context.Context, req UpRequest, progress func(Event)) error {
		return s.up(ctx, req, progress)
	}))
	mux.HandleFunc("POST /down", streamed(s, func(ctx context.Context, req DownRequest, progress func(Event)) error {
		return s.down(ctx, req, progress)
	}))
	for _, op := range []string{"start", "stop", "restart", "kill", "rm", "pause", "unpause"} {
		mux.HandleFunc("POST /"+op, streamed(s, func(ctx context.Context, req ContainersRequest, progress func(Event)) error {
			return s.containersOp(ctx, op, req, progress)
		}))
	}
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		ch := s.subscribe()
		defer s.unsubscribe(ch)
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		flush(w)
		enc := json.NewEncoder(w)
		for {
			select {
			case <-r.Context().Done():
				return
			case <-s.ctx.Done():
				return
			case e := <-ch:
				if enc.Encode(message{Event: &e}) != nil {
					return
				}
				flush(w)
			}
		}
	})
	// Any request, an event stream too, is the one a spawned supervisor
	// waits for before its idle grace shortens.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.awaiting = false
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

// track counts a request as in flight, so that the supervisor does not exit
// under it.
func (s *Supervisor) track(fn func()) {
	s.mu.Lock()
	s.busy++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.busy--
		idle := s.busy == 0
		s.mu.Unlock()
		s.checkIdle()
		if idle {
			// A supervisor spends its life waiting: give back what a
			// burst of work (an up of many containers) made the heap grow to.
			debug.FreeOSMemory()
		}
	}()
	fn()
}

// streamed decodes a request of type T, runs fn, and streams its progress
// events and its outcome as JSON lines. The operation goes on if the client
// goes away: a half-done `up` or `down` is worse than an unread answer.
func streamed[T any](s *Supervisor, fn func(context.Context, T, func(Event)) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.track(func() {
			var req T
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			flush(w)
			var mu sync.Mutex
			enc := json.NewEncoder(w)
			gone := false
			progress := func(e Event) {
				if e.Time.IsZero() {
					e.Time = time.Now().UTC()
				}
				mu.Lock()
				defer mu.Unlock()
				if gone {
					return
				}
				if enc.Encode(message{Event: &e}) != nil {
					gone = true
					return
				}
				flush(w)
			}
			s.opMu.Lock()
			err := fn(s.ctx, req, progress)
			s.opMu.Unlock()
			m := message{Done: true}
			if err != nil {
				m.Error = err.Error()
			}
			mu.Lock()
			_ = enc.Encode(m)
			flush(w)
			mu.Unlock()
		})
	}
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}
