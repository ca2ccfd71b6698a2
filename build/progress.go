package build

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress prints a build as BuildKit's plain progress does: each step
// numbered, its output lines with the time since it started, then DONE
// with its duration, CACHED or ERROR.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	n     int
	start time.Time
}

// NewProgress prints to w; a nil w prints nothing.
func NewProgress(w io.Writer) *Progress {
	if w == nil {
		w = io.Discard
	}
	return &Progress{w: w, start: time.Now()}
}

// step is one numbered vertex of the output.
type step struct {
	p     *Progress
	id    int
	start time.Time
}

func (p *Progress) begin(name string) *step {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	fmt.Fprintf(p.w, "#%d %s\n", p.n, name)
	return &step{p: p, id: p.n, start: time.Now()}
}

func (s *step) log(line string) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	fmt.Fprintf(s.p.w, "#%d %.3f %s\n", s.id, time.Since(s.start).Seconds(), strings.TrimRight(line, "\r"))
}

func (s *step) cached() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	fmt.Fprintf(s.p.w, "#%d CACHED\n\n", s.id)
}

func (s *step) done() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	fmt.Fprintf(s.p.w, "#%d DONE %.1fs\n\n", s.id, time.Since(s.start).Seconds())
}

func (s *step) fail(err error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	fmt.Fprintf(s.p.w, "#%d ERROR: %v\n\n", s.id, err)
}
