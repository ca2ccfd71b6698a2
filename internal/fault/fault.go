// Package fault is a test hook: it lets the fault-injection suite stop the
// supervisor at a named step of an operation, so that each step is hit on
// purpose rather than by luck.
//
// It is compiled in always and does nothing unless the environment variable
// BERTH_FAULT names a step. Its value is a comma-separated list of
// STEP[:ACTION], where ACTION is
//
//	kill   the process sends itself SIGKILL (the default)
//	pause  the calling goroutine blocks for ever, for a test to act meanwhile
//
// A step fires once per process. The CLI passes BERTH_FAULT only to the first
// supervisor it spawns, so a retried request reaches a clean one.
package fault

import (
	"os"
	"strings"
	"sync"
	"syscall"
)

// Env is the variable that arms the hook.
const Env = "BERTH_FAULT"

// Action is what happens at an armed step.
type Action string

const (
	Kill  Action = "kill"
	Pause Action = "pause"
)

var (
	once  sync.Once
	mu    sync.Mutex
	armed map[string]Action
	// hook, when set (by unit tests), is called instead of acting.
	hook func(step string, a Action)
)

// Parse reads a BERTH_FAULT value.
func Parse(v string) map[string]Action {
	out := map[string]Action{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		step, act, _ := strings.Cut(item, ":")
		switch Action(act) {
		case "":
			out[step] = Kill
		case Kill, Pause:
			out[step] = Action(act)
		}
	}
	return out
}

// Point marks a named step. Without BERTH_FAULT it returns at once.
func Point(step string) {
	once.Do(func() {
		if v := os.Getenv(Env); v != "" {
			armed = Parse(v)
		}
	})
	if armed == nil {
		return
	}
	mu.Lock()
	a, ok := armed[step]
	if ok {
		delete(armed, step) // once per process
	}
	h := hook
	mu.Unlock()
	if !ok {
		return
	}
	if h != nil {
		h(step, a)
		return
	}
	switch a {
	case Kill:
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way; nothing after the step may run
	case Pause:
		select {}
	}
}
