package build

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress prints a build's steps. Plain mode is BuildKit's plain progress:
// each step numbered as it starts, its output lines with the time since it
// started, then DONE with its duration, CACHED or ERROR. Compact mode (for
// a terminal) is one line per step once it ends, as compose shows them:
// " => CACHED [stage 2/4] COPY ..." or " => [stage 3/4] RUN ...  0.4s",
// and a failing step's last output lines.
type Progress struct {
	mu      sync.Mutex
	w       io.Writer
	compact bool
	n       int
}

// NewProgress prints plain progress to w; a nil w prints nothing.
func NewProgress(w io.Writer) *Progress {
	if w == nil {
		w = io.Discard
	}
	return &Progress{w: w}
}

// NewCompactProgress prints one line per finished step to w.
func NewCompactProgress(w io.Writer) *Progress {
	p := NewProgress(w)
	p.compact = true
	return p
}

// step is one numbered vertex of the output.
type step struct {
	p     *Progress
	id    int
	name  string
	start time.Time
	tail  []string // compact mode: the last output lines, for an error
}

func (p *Progress) begin(name string) *step {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if !p.compact {
		fmt.Fprintf(p.w, "#%d %s\n", p.n, name)
	}
	return &step{p: p, id: p.n, name: name, start: time.Now()}
}

func (s *step) log(line string) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	line = strings.TrimRight(line, "\r")
	if s.p.compact {
		s.tail = append(s.tail, line)
		if len(s.tail) > tailLines {
			s.tail = s.tail[1:]
		}
		return
	}
	fmt.Fprintf(s.p.w, "#%d %.3f %s\n", s.id, time.Since(s.start).Seconds(), line)
}

func (s *step) cached() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if s.p.compact {
		fmt.Fprintf(s.p.w, " => CACHED %s\n", s.name)
		return
	}
	fmt.Fprintf(s.p.w, "#%d CACHED\n\n", s.id)
}

func (s *step) done() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	d := time.Since(s.start).Seconds()
	if s.p.compact {
		fmt.Fprintf(s.p.w, " => %s  %.1fs\n", s.name, d)
		return
	}
	fmt.Fprintf(s.p.w, "#%d DONE %.1fs\n\n", s.id, d)
}

func (s *step) fail(err error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if s.p.compact {
		fmt.Fprintf(s.p.w, " => ERROR %s  %.1fs\n", s.name, time.Since(s.start).Seconds())
		for _, l := range s.tail {
			fmt.Fprintf(s.p.w, " > %s\n", l)
		}
		return
	}
	fmt.Fprintf(s.p.w, "#%d ERROR: %v\n\n", s.id, err)
}
