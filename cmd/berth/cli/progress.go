package cli

import (
	"fmt"
	"io"
	"sync"

	"github.com/berthrun/berth/supervisor"
)

// stepPrinter prints the supervisor's progress as compose's plain
// progress does: one line per step, " Container <name>  <Step>".
type stepPrinter struct {
	mu  sync.Mutex
	out io.Writer
}

func newSteps(out io.Writer) *stepPrinter { return &stepPrinter{out: out} }

func (p *stepPrinter) event(e supervisor.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case e.Action == "warning":
		fmt.Fprintf(p.out, "WARN %s\n", e.Message)
	case e.Message != "":
		fmt.Fprintf(p.out, " %s\n", e.Message)
	case e.Container != "":
		fmt.Fprintf(p.out, " Container %s  %s\n", e.Container, e.Action)
	}
}
