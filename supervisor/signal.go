package supervisor

import (
	"syscall"

	"github.com/berthrun/berth/project/model"
)

// ParseSignal reads a signal as compose and docker accept it: "SIGINT",
// "INT", "int" or "2". "" is SIGTERM. The loader checks stop_signal with
// the same function.
func ParseSignal(s string) (syscall.Signal, error) { return model.ParseSignal(s) }
