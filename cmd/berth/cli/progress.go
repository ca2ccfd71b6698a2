package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/berthrun/berth/supervisor"
)

// stepPrinter prints the supervisor's progress as compose does: on a
// terminal, one live line per container, network or volume, redrawn in
// place under a "[+] Running n/m" title; otherwise one plain line per step,
// " Container <name>  <Step>".
type stepPrinter struct {
	mu     sync.Mutex
	out    io.Writer
	tty    bool
	start  time.Time
	order  []string
	steps  map[string]*step
	drawn  int // lines drawn by the last redraw
	warns  []string
	ticker *time.Ticker
	done   chan struct{}
}

type step struct {
	status string
	since  time.Time
	end    time.Duration // set when the status is final
}

func newSteps(out io.Writer) *stepPrinter {
	p := &stepPrinter{out: out, tty: isTerminal(out), start: time.Now(), steps: map[string]*step{}}
	if p.tty {
		p.ticker = time.NewTicker(100 * time.Millisecond)
		p.done = make(chan struct{})
		go func() {
			for {
				select {
				case <-p.done:
					return
				case <-p.ticker.C:
					p.mu.Lock()
					p.redraw()
					p.mu.Unlock()
				}
			}
		}()
	}
	return p
}

// finalSteps end a resource's line: its time stops there.
var finalSteps = map[string]bool{
	"Created": true, "Started": true, "Running": true, "Healthy": true, "Exited": true,
	"Stopped": true, "Removed": true, "Killed": true, "Paused": true, "Unpaused": true,
	"Recreated": true, "Pulled": true,
}

func (p *stepPrinter) event(e supervisor.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := ""
	switch {
	case e.Action == "warning":
		if p.tty {
			p.warns = append(p.warns, e.Message)
		} else {
			fmt.Fprintf(p.out, "WARN %s\n", e.Message)
		}
		return
	case e.Container != "":
		key = "Container " + e.Container
	case e.Object != "":
		key = e.Object
	case e.Message != "":
		if !p.tty {
			fmt.Fprintf(p.out, " %s\n", e.Message)
		}
		return
	default:
		return
	}
	if !p.tty {
		fmt.Fprintf(p.out, " %s  %s\n", key, e.Action)
		return
	}
	s, ok := p.steps[key]
	if !ok {
		s = &step{since: time.Now()}
		p.steps[key] = s
		p.order = append(p.order, key)
	}
	s.status = e.Action
	s.end = 0
	if finalSteps[e.Action] {
		s.end = time.Since(s.since)
	}
}

// redraw repaints the live block; p.mu is held.
func (p *stepPrinter) redraw() {
	if len(p.order) == 0 {
		return
	}
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	finished := 0
	for _, k := range p.order {
		if p.steps[k].end > 0 {
			finished++
		}
	}
	fmt.Fprintf(&b, "\x1b[2K[+] Running %d/%d\n", finished, len(p.order))
	width := 0
	for _, k := range p.order {
		width = max(width, len(k))
	}
	spin := `⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏`
	frames := []rune(spin)
	frame := string(frames[int(time.Since(p.start)/(100*time.Millisecond))%len(frames)])
	for _, k := range p.order {
		s := p.steps[k]
		mark, d := frame, time.Since(s.since)
		if s.end > 0 {
			mark, d = "\x1b[32m✔\x1b[0m", s.end
		}
		fmt.Fprintf(&b, "\x1b[2K %s %-*s  %-10s %.1fs\n", mark, width, k, s.status, d.Seconds())
	}
	p.drawn = len(p.order) + 1
	io.WriteString(p.out, b.String())
}

// close draws the final state and stops the live display.
func (p *stepPrinter) close() {
	if !p.tty {
		return
	}
	close(p.done)
	p.ticker.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.order {
		if s := p.steps[k]; s.end == 0 {
			s.end = time.Since(s.since)
		}
	}
	p.redraw()
	for _, w := range p.warns {
		fmt.Fprintf(p.out, "WARN %s\n", w)
	}
}

// withSteps runs fn with a progress printer on w and closes it after.
func withSteps(w io.Writer, fn func(progress func(supervisor.Event)) error) error {
	p := newSteps(w)
	err := fn(p.event)
	p.close()
	return err
}
