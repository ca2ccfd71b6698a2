package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/berthrun/berth/internal/errdefs"
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
	// MaxReplicas is the CLI's replica ceiling (model.MaxReplicas); zero
	// means the supervisor's own.
	MaxReplicas int `json:"max_replicas,omitempty"`
	// Parallel bounds the containers created, started, stopped or removed
	// at once (compose's --parallel); zero or less is no bound.
	Parallel int `json:"parallel,omitempty"`
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
	Parallel     int      `json:"parallel,omitempty"` // as UpRequest's
}

// ContainersRequest selects containers for start, stop, restart, kill, rm,
// pause and unpause.
type ContainersRequest struct {
	Services []string       `json:"services,omitempty"` // none: all
	Index    int            `json:"index,omitempty"`    // a replica number, 0 for all
	Timeout  *time.Duration `json:"timeout,omitempty"`
	Signal   string         `json:"signal,omitempty"`
	Stop     bool           `json:"stop,omitempty"`
	Volumes  bool           `json:"volumes,omitempty"`  // rm -v: anonymous volumes too
	Parallel int            `json:"parallel,omitempty"` // as UpRequest's
}

// message is one line of a streamed response. An error crosses the socket
// as its kind (internal/errdefs) and its text, so that the client gets back
// an error callers branch on with errors.Is.
type message struct {
	Event *Event `json:"event,omitempty"`
	Done  bool   `json:"done,omitempty"`
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
}

func (s *Supervisor) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ps", func(w http.ResponseWriter, r *http.Request) {
		s.track(func() {
			recs := []Record{}
			for _, c := range s.list() {
				recs = append(recs, c.snapshot())
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(recs)
		})
	})
	mux.HandleFunc("POST /up", streamed(s, opUp, func(ctx context.Context, req UpRequest, progress func(Event)) error {
		return s.up(withParallel(ctx, req.Parallel), req, progress)
	}))
	mux.HandleFunc("POST /down", streamed(s, opDown, func(ctx context.Context, req DownRequest, progress func(Event)) error {
		return s.down(withParallel(ctx, req.Parallel), req, progress)
	}))
	for _, op := range []string{"start", "stop", "restart", "kill", "rm", "pause", "unpause"} {
		mux.HandleFunc("POST /"+op, streamed(s, opOther, func(ctx context.Context, req ContainersRequest, progress func(Event)) error {
			return s.containersOp(withParallel(ctx, req.Parallel), op, req, progress)
		}))
	}
	mux.HandleFunc("POST /exec", func(w http.ResponseWriter, r *http.Request) {
		s.track(func() { s.serveExec(w, r) })
	})
	mux.HandleFunc("POST /run", func(w http.ResponseWriter, r *http.Request) {
		s.track(func() { s.serveRun(w, r) })
	})
	mux.HandleFunc("POST /attach", func(w http.ResponseWriter, r *http.Request) {
		s.track(func() { s.serveAttach(w, r) })
	})
	mux.HandleFunc("GET /cp/stat", func(w http.ResponseWriter, r *http.Request) {
		s.track(func() { s.serveCopyStat(w, r) })
	})
	mux.HandleFunc("POST /cp/from", func(w http.ResponseWriter, r *http.Request) {
		s.track(func() { s.serveCopyFrom(w, r) })
	})
	mux.HandleFunc("POST /cp/to", func(w http.ResponseWriter, r *http.Request) {
		s.track(func() { s.serveCopyTo(w, r) })
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		s.track(func() { s.serveStats(w, r) })
	})
	mux.HandleFunc("GET /top", func(w http.ResponseWriter, r *http.Request) {
		s.track(func() { s.serveTop(w, r) })
	})
	mux.HandleFunc("POST /wait", func(w http.ResponseWriter, r *http.Request) {
		s.track(func() { s.serveWait(w, r) })
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		since, until, replay, err := eventsRange(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ch, seq := s.subscribe()
		defer s.unsubscribe(ch)
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		flush(w)
		enc := json.NewEncoder(w)
		if replay {
			// The journal up to the subscription, then the channel from
			// it: each event once, in order.
			failed := false
			s.journal.replay(seq, since, until, func(e Event) {
				if !failed && enc.Encode(message{Event: &e}) != nil {
					failed = true
				}
			})
			if failed {
				return
			}
			flush(w)
		}
		var end <-chan time.Time
		if !until.IsZero() {
			left := time.Until(until)
			if left <= 0 {
				_ = enc.Encode(message{Done: true})
				return
			}
			t := time.NewTimer(left)
			defer t.Stop()
			end = t.C
		}
		for {
			select {
			case <-r.Context().Done():
				return
			case <-s.ctx.Done():
				return
			case <-end:
				_ = enc.Encode(message{Done: true})
				return
			case e := <-ch:
				if !until.IsZero() && e.Time.After(until) {
					_ = enc.Encode(message{Done: true})
					return
				}
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

// eventsRange reads /events' query: since and until as RFC 3339 times.
// A since asks for the journal's events from then on before the live ones.
func eventsRange(r *http.Request) (since, until time.Time, replay bool, err error) {
	q := r.URL.Query()
	if v := q.Get("since"); v != "" {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return since, until, false, fmt.Errorf("since: %w", err)
		}
		replay = true
	}
	if v := q.Get("until"); v != "" {
		if until, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return since, until, false, fmt.Errorf("until: %w", err)
		}
	}
	return since, until, replay, nil
}

// track counts a request as in flight, so that the supervisor does not exit
// under it. A request that comes once the supervisor has decided to exit
// gets no answer at all: the client sends it again, to the next supervisor.
func (s *Supervisor) track(fn func()) {
	s.mu.Lock()
	if s.exiting {
		s.mu.Unlock()
		panic(http.ErrAbortHandler)
	}
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
			s.scheduleTrim()
		}
	}()
	fn()
}

// opKind says how a streamed operation relates to the others.
type opKind int

const (
	opOther opKind = iota
	// opUp ends when its client goes away or a down comes: an up of many
	// replicas would otherwise go on creating for minutes.
	opUp
	// opDown cancels the ups in flight before it waits for its turn.
	opDown
)

// Why an up was cancelled, as its error says.
var (
	errClientGone = errors.New("up cancelled: the client went away")
	errDownCame   = errors.New("up cancelled by down")
)

// progressWriteTimeout bounds one write of a progress line: a client that
// stops reading must not hold the operation lock.
const progressWriteTimeout = 10 * time.Second

// streamed decodes a request of type T, runs fn, and streams its progress
// events and its outcome as JSON lines. Except for up, the operation goes on
// if the client goes away: a half-done down is worse than an unread answer.
// An up stops at its next step (a container being created is finished or
// rolled back) and leaves what it made for a later up or down.
func streamed[T any](s *Supervisor, kind opKind, fn func(context.Context, T, func(Event)) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.track(func() {
			var req T
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), statusOf(errdefs.ErrInvalidArgument))
				return
			}
			// The server watches for the client's going away once the
			// body has been read to its end.
			_, _ = io.Copy(io.Discard, r.Body)
			ctx := s.ctx
			switch kind {
			case opUp:
				var cancel context.CancelCauseFunc
				ctx, cancel = context.WithCancelCause(s.ctx)
				defer cancel(nil)
				stop := context.AfterFunc(r.Context(), func() { cancel(errClientGone) })
				defer stop()
				defer s.trackUp(cancel)()
			case opDown:
				s.cancelUps(errDownCame)
			}
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			flush(w)
			rc := http.NewResponseController(w)
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
				_ = rc.SetWriteDeadline(time.Now().Add(progressWriteTimeout))
				if enc.Encode(message{Event: &e}) != nil || rc.Flush() != nil {
					gone = true
				}
			}
			var err error
			select {
			case s.opLock <- struct{}{}:
				if err = context.Cause(ctx); err == nil {
					err = fn(ctx, req, progress)
				}
				<-s.opLock
			case <-ctx.Done():
				err = context.Cause(ctx)
			}
			if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(err, cause) {
				// What a cancelled step reports (a killed command, a
				// cancelled context) matters less than why.
				if errors.Is(err, context.Canceled) {
					err = cause
				} else {
					err = fmt.Errorf("%w (%v)", cause, err)
				}
			}
			m := message{Done: true}
			if err != nil {
				m.Error, m.Kind = err.Error(), errdefs.Kind(err)
				// The CLI may be gone: the supervisor's log and `berth
				// events` keep the failure too.
				s.logf("%s failed: %v", r.URL.Path[1:], err)
				s.emit(Event{Action: "error", Message: r.URL.Path[1:] + ": " + err.Error()})
			}
			mu.Lock()
			_ = rc.SetWriteDeadline(time.Now().Add(progressWriteTimeout))
			_ = enc.Encode(m)
			flush(w)
			mu.Unlock()
		})
	}
}

// trackUp records the cancel function of an up in flight, for a down to
// call; the function returned forgets it.
func (s *Supervisor) trackUp(cancel context.CancelCauseFunc) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextUp++
	id := s.nextUp
	s.ups[id] = cancel
	return func() {
		s.mu.Lock()
		delete(s.ups, id)
		s.mu.Unlock()
	}
}

// cancelUps cancels every up in flight or waiting for its turn.
func (s *Supervisor) cancelUps(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cancel := range s.ups {
		cancel(cause)
	}
}

// statusOf is the HTTP status that carries an error of kind's before a
// stream starts; errorOfStatus in the client reads it back.
func statusOf(kind error) int {
	switch {
	case errors.Is(kind, errdefs.ErrInvalidArgument):
		return http.StatusBadRequest
	case errors.Is(kind, errdefs.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(kind, errdefs.ErrFailedPrecondition), errors.Is(kind, errdefs.ErrConflict):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}
