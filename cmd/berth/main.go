// Command berth runs compose projects on its own embedded container engine.
package main

import (
	"os"

	"github.com/berthrun/berth/cmd/berth/cli"
	"github.com/berthrun/berth/engine/runtime"
)

// The runtime re-executes this binary inside new containers; those calls
// must never reach the CLI.
func init() { runtime.Reexec() }

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
