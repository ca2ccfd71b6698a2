package supervisor

import (
	"sort"
	"time"
)

// Event is one step of a command's progress or of a container's life, as
// `up` prints it and `berth events` streams it.
type Event struct {
	Time      time.Time `json:"time"`
	Action    string    `json:"action"` // create, start, die, stop, kill, restart, destroy, health_status, pause, unpause, error (Message says what failed)
	Container string    `json:"container,omitempty"`
	Service   string    `json:"service,omitempty"`
	ID        string    `json:"id,omitempty"`
	ExitCode  int       `json:"exit_code,omitempty"`
	Health    string    `json:"health,omitempty"`
	// Object names what a progress step is about when it is not a
	// container: `Network demo_default`, `Volume "demo_data"`.
	Object string `json:"object,omitempty"`
	// Message is a warning or a line of progress that belongs to no container.
	Message string `json:"message,omitempty"`
	// Seq numbers a container event in the project's journal.
	Seq uint64 `json:"seq,omitempty"`
}

// emit writes e to the journal and sends it to every subscriber without
// blocking: a slow reader loses events rather than stalling containers.
func (s *Supervisor) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.journal.append(&e)
	for ch := range s.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// subscribe returns a channel of the events emitted from now on, and the
// journal number of the last event emitted before.
func (s *Supervisor) subscribe() (chan Event, uint64) {
	ch := make(chan Event, 256)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[ch] = struct{}{}
	var seq uint64
	if s.journal != nil {
		seq = s.journal.seq
	}
	return ch, seq
}

func (s *Supervisor) unsubscribe(ch chan Event) {
	s.mu.Lock()
	delete(s.subs, ch)
	s.mu.Unlock()
}

func sortContainers(cs []*container) {
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i].rec, cs[j].rec
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.Number < b.Number
	})
}
