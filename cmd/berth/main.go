// Command berth runs compose projects on its own embedded container engine.
package main

import (
	"os"

	"github.com/berthrun/berth/cmd/berth/cli"
	"github.com/berthrun/berth/engine/runtime"
)

func init() {
	// libcontainer re-executes this binary as "berth init" inside the new
	// namespaces; that call must never reach the CLI.
	if len(os.Args) > 1 && os.Args[1] == "init" {
		runtime.Init()
	}
	// As a container's PID 1 (compose `init: true`), berth forwards signals
	// to the command and reaps orphans.
	if len(os.Args) > 1 && os.Args[1] == runtime.ReaperArg {
		os.Exit(runtime.RunReaper(os.Args[2:]))
	}
}

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
