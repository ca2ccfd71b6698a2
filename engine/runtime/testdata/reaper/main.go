// Command reaper is a static stand-in for the berth binary in tests of
// Spec.Init: it understands only the reaper hook.
package main

import (
	"os"

	"github.com/berthrun/berth/engine/runtime/internal/reaper"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "__reaper" {
		os.Exit(reaper.Run(os.Args[2:]))
	}
	os.Exit(2)
}
