package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress prints a build's steps as BuildKit's displays do, which is what
// docker compose shows. Plain mode: each step numbered as it starts, its
// output lines with the time since it started, then DONE with its
// duration, CACHED or ERROR. Terminal mode: a tree redrawn in place under
// "[+] Building 1.2s (5/8)", one line per step with its time, the last
// output lines of running steps below them, "FINISHED" at the end. Both
// end a failed build with the failing step's last output lines and the
// Dockerfile lines around it.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	n     int
	start time.Time
	steps []*step

	// Terminal mode.
	width, height int
	drawn         int // lines of the last redraw
	stop          chan struct{}
	stopped       chan struct{}
	closed        bool

	// What a failure shows: the Dockerfile, by line.
	srcName string
	src     []string
}

// NewProgress prints plain progress to w; a nil w prints nothing.
func NewProgress(w io.Writer) *Progress {
	if w == nil {
		w = io.Discard
	}
	return &Progress{w: w, start: time.Now()}
}

// NewTTYProgress draws the live tree on w, a terminal width columns wide
// and height lines high (0: 80 by 24). Build ends it.
func NewTTYProgress(w io.Writer, width, height int) *Progress {
	p := NewProgress(w)
	p.tty = true
	p.width, p.height = width, height
	if p.width <= 0 {
		p.width = 80
	}
	if p.height <= 0 {
		p.height = 24
	}
	p.stop, p.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.redraw(false)
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// step is one numbered vertex of the output.
type step struct {
	p     *Progress
	id    int
	name  string
	start time.Time
	end   time.Duration
	state string   // "", "done", "cached" or "error"
	logs  []string // the last output lines, with their times
	line  int      // the Dockerfile line, for a failure
	err   error
}

// maxLogs is how many output lines a running step shows on a terminal, as
// BuildKit's tree does.
const maxLogs = 6

func (p *Progress) setSource(name string, src []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.srcName = name
	p.src = strings.Split(strings.TrimRight(string(src), "\n"), "\n")
}

// begin starts a step; line is its Dockerfile line (0: none).
func (p *Progress) begin(name string, line int) *step {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	s := &step{p: p, id: p.n, name: name, start: time.Now(), line: line}
	p.steps = append(p.steps, s)
	if !p.tty {
		fmt.Fprintf(p.w, "#%d %s\n", p.n, name)
	}
	return s
}

func (s *step) log(line string) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	line = fmt.Sprintf("%.3f %s", time.Since(s.start).Seconds(), strings.TrimRight(line, "\r"))
	s.logs = append(s.logs, line)
	if len(s.logs) > tailLines {
		s.logs = s.logs[1:]
	}
	if !s.p.tty {
		fmt.Fprintf(s.p.w, "#%d %s\n", s.id, line)
	}
}

func (s *step) cached() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.state, s.end = "cached", time.Since(s.start)
	if !s.p.tty {
		fmt.Fprintf(s.p.w, "#%d CACHED\n\n", s.id)
	}
}

func (s *step) done() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.state, s.end = "done", time.Since(s.start)
	if !s.p.tty {
		fmt.Fprintf(s.p.w, "#%d DONE %.1fs\n\n", s.id, s.end.Seconds())
	}
}

func (s *step) fail(err error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.state, s.end, s.err = "error", time.Since(s.start), err
	if !s.p.tty {
		fmt.Fprintf(s.p.w, "#%d ERROR: %v\n\n", s.id, err)
	}
}

// finish ends the display: on a terminal the tree's last state, marked
// FINISHED; then, for a failed build, each failing step's last output
// and the Dockerfile lines around it.
func (p *Progress) finish(err error) {
	if p.tty {
		p.mu.Lock()
		closed := p.closed
		p.closed = true
		p.mu.Unlock()
		if !closed {
			close(p.stop)
			<-p.stopped
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.redraw(true)
	}
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	for _, s := range p.steps {
		if s.state != "error" {
			continue
		}
		var re *RunError
		if errors.As(s.err, &re) || len(s.logs) > 0 {
			fmt.Fprintf(p.w, "------\n > %s:\n", s.name)
			for _, l := range s.logs {
				fmt.Fprintln(p.w, l)
			}
			fmt.Fprintln(p.w, "------")
		}
		p.excerpt(s.line)
	}
}

// excerpt prints the Dockerfile around line as BuildKit does on an error.
func (p *Progress) excerpt(line int) {
	if line <= 0 || line > len(p.src) {
		return
	}
	fmt.Fprintf(p.w, "%s:%d\n--------------------\n", p.srcName, line)
	from, to := max(1, line-2), min(len(p.src), line+2)
	for i := from; i <= to; i++ {
		mark := "    "
		if i == line {
			mark = ">>> "
		}
		fmt.Fprintf(p.w, " %3d | %s%s\n", i, mark, p.src[i-1])
	}
	fmt.Fprintln(p.w, "--------------------")
}

// redraw repaints the tree in place; p.mu is held. While the build runs,
// only what fits the terminal is drawn (the newest steps); the last
// drawing has every step.
func (p *Progress) redraw(final bool) {
	if len(p.steps) == 0 {
		return
	}
	finished := 0
	for _, s := range p.steps {
		if s.state != "" {
			finished++
		}
	}
	head := fmt.Sprintf("[+] Building %.1fs (%d/%d)", time.Since(p.start).Seconds(), finished, len(p.steps))
	if final {
		head += " FINISHED"
	}
	lines := []string{head}
	for _, s := range p.steps {
		d := s.end
		prefix := ""
		switch s.state {
		case "":
			d = time.Since(s.start)
		case "cached":
			prefix = "CACHED "
		case "error":
			prefix = "ERROR "
		}
		lines = append(lines, p.fit(" => "+prefix+s.name, fmt.Sprintf("%.1fs", d.Seconds())))
		if s.state == "" || s.state == "error" && !final {
			logs := s.logs
			if len(logs) > maxLogs {
				logs = logs[len(logs)-maxLogs:]
			}
			for _, l := range logs {
				lines = append(lines, p.fit(" => => # "+l, ""))
			}
		}
	}
	if !final && len(lines) > p.height-1 {
		lines = append(lines[:1], lines[len(lines)-(p.height-2):]...)
	}
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, l := range lines {
		b.WriteString("\x1b[2K")
		b.WriteString(l)
		b.WriteString("\n")
	}
	// A shorter tree than the last leaves old lines below: clear them.
	for i := len(lines); i < p.drawn; i++ {
		b.WriteString("\x1b[2K\n")
	}
	if extra := p.drawn - len(lines); extra > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", extra)
	}
	p.drawn = len(lines)
	io.WriteString(p.w, b.String())
}

// fit lays out one line of the tree in the terminal's width: text cut to
// fit, right the duration at the right edge.
func (p *Progress) fit(text, right string) string {
	text = strings.ReplaceAll(text, "\t", "    ")
	room := p.width - 1 - len(right)
	if right != "" {
		room -= 2
	}
	r := []rune(text)
	if len(r) > room {
		r = r[:max(room, 0)]
	}
	if right == "" {
		return string(r)
	}
	return string(r) + strings.Repeat(" ", room-len(r)+2) + right
}
