package main

import (
	"sort"
	"sync"
	"time"
)

type note struct {
	ID      int       `json:"id"`
	Text    string    `json:"text"`
	Created time.Time `json:"created"`
}

type store struct {
	mu    sync.Mutex
	next  int
	notes map[int]note
}

func newStore() *store { return &store{next: 1, notes: map[int]note{}} }

func (s *store) add(text string) note {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := note{ID: s.next, Text: text, Created: time.Now().UTC()}
	s.notes[n.ID] = n
	s.next++
	return n
}

func (s *store) get(id int) (note, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.notes[id]
	return n, ok
}

func (s *store) list() []note {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]note, 0, len(s.notes))
	for _, n := range s.notes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
