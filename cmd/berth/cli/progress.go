package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	units "github.com/docker/go-units"
	"golang.org/x/term"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/supervisor"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// terminalSize is w's size in columns and lines; 0, 0 when w is not a
// terminal.
func terminalSize(w io.Writer) (int, int) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, 0
	}
	width, height, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0, 0
	}
	return width, height
}

// ui is how the global --progress and --ansi flags ask output to look.
var ui struct{ progress, ansi string }

// checkUI validates the global flags with compose's messages.
func checkUI() error {
	switch ui.ansi {
	case "", "auto", "never", "always":
	default:
		return fmt.Errorf("unsupported --ansi value %q", ui.ansi)
	}
	switch ui.progress {
	case "", "auto", "plain", "json", "quiet":
	case "tty":
		if ui.ansi == "never" {
			return fmt.Errorf("can't use --progress tty while ANSI support is disabled")
		}
	default:
		return fmt.Errorf("unsupported --progress value %q", ui.progress)
	}
	return nil
}

// redraws tells whether progress on w is drawn in place with ANSI
// sequences: --progress tty or --ansi always say yes, plain, json, quiet
// and --ansi never say no, else only on a terminal.
func redraws(w io.Writer) bool {
	switch {
	case ui.ansi == "never", ui.progress == "plain", ui.progress == "json", ui.progress == "quiet":
		return false
	case ui.ansi == "always", ui.progress == "tty":
		return true
	}
	return isTerminal(w)
}

// colours tells whether text on w is coloured (--ansi).
func colours(w io.Writer) bool {
	switch ui.ansi {
	case "never":
		return false
	case "always":
		return true
	}
	return isTerminal(w)
}

// liveView is the CLI's one progress renderer: on a terminal, a block of
// lines kept under the cursor and redrawn in place; elsewhere its owner
// prints plain lines as things change. stepPrinter (compose's step lines)
// and pullProgress (docker's layer lines) only format the lines.
type liveView struct {
	mu    sync.Mutex
	out   io.Writer
	tty   bool
	drawn int // lines drawn by the last redraw
}

func newLiveView(out io.Writer) liveView {
	return liveView{out: out, tty: redraws(out)}
}

// draw replaces the block drawn last with lines; v.mu is held.
func (v *liveView) draw(lines []string) {
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn)
	}
	for _, l := range lines {
		b.WriteString("\x1b[2K")
		b.WriteString(l)
		b.WriteString("\n")
	}
	v.drawn = len(lines)
	io.WriteString(v.out, b.String())
}

// stepPrinter prints the supervisor's progress as compose does: on a
// terminal, one live line per container, network or volume, redrawn in
// place under a "[+] Running n/m" title; otherwise one plain line per step,
// " Container <name>  <Step>".
type stepPrinter struct {
	liveView
	start  time.Time
	order  []string
	steps  map[string]*step
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
	p := &stepPrinter{liveView: newLiveView(out), start: time.Now(), steps: map[string]*step{}}
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
	finished := 0
	for _, k := range p.order {
		if p.steps[k].end > 0 {
			finished++
		}
	}
	lines := []string{fmt.Sprintf("[+] Running %d/%d", finished, len(p.order))}
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
		lines = append(lines, fmt.Sprintf(" %s %-*s  %-10s %.1fs", mark, width, k, s.status, d.Seconds()))
	}
	p.draw(lines)
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
	switch ui.progress {
	case "quiet":
		w = io.Discard
	case "json":
		// One JSON object per step, for tools reading the output.
		enc := json.NewEncoder(w)
		return fn(func(e supervisor.Event) { _ = enc.Encode(e) })
	}
	p := newSteps(w)
	err := fn(p.event)
	p.close()
	return err
}

// pullProgress shows per-layer progress: redrawn in place on a terminal,
// one line per status change otherwise.
type pullProgress struct {
	liveView
	order  []string
	lines  map[string]image.Progress
	lastAt time.Time
}

func newPullProgress(out io.Writer) *pullProgress {
	return &pullProgress{liveView: newLiveView(out), lines: map[string]image.Progress{}}
}

func (p *pullProgress) event(ev image.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev, seen := p.lines[ev.ID]
	if !seen {
		p.order = append(p.order, ev.ID)
	}
	p.lines[ev.ID] = ev
	if !p.tty {
		if !seen || prev.Status != ev.Status {
			fmt.Fprintf(p.out, "%s: %s\n", ev.ID, ev.Status)
		}
		return
	}
	// Redraw at most every 100ms while bytes flow; always on a status change.
	if seen && prev.Status == ev.Status && time.Since(p.lastAt) < 100*time.Millisecond {
		return
	}
	p.redraw()
}

func (p *pullProgress) redraw() {
	p.lastAt = time.Now()
	lines := make([]string, 0, len(p.order))
	for _, id := range p.order {
		ev := p.lines[id]
		var b strings.Builder
		b.WriteString(id + ": " + ev.Status)
		if (ev.Status == image.StatusDownloading || ev.Status == image.StatusLoadingLayer) && ev.Total > 0 {
			const width = 40
			done := int(float64(width) * float64(ev.Current) / float64(ev.Total))
			done = min(max(done, 0), width)
			fmt.Fprintf(&b, " [%s>%s] %s/%s", strings.Repeat("=", done), strings.Repeat(" ", width-done),
				units.HumanSizeWithPrecision(float64(ev.Current), 3), units.HumanSizeWithPrecision(float64(ev.Total), 3))
		}
		lines = append(lines, b.String())
	}
	p.draw(lines)
}

func (p *pullProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && len(p.order) > 0 {
		p.redraw()
	}
}
