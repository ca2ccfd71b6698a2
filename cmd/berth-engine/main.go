// Command berth-engine is a project's supervisor: berth starts it as
// `berth-engine --root R --run-root RR __supervise PROJECT`. It is the berth
// binary without the CLI and the compose loader, so that the processes it
// starts for every container (libcontainer re-executes the supervisor's own
// binary as the container's init) start faster and the supervisor itself
// takes less memory. berth falls back to supervising with its own binary
// when berth-engine is not beside it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/supervisor"
)

// The runtime re-executes this binary inside new containers; those calls
// must never reach main.
func init() { runtime.Reexec() }

func main() {
	fs := flag.NewFlagSet("berth-engine", flag.ContinueOnError)
	root := fs.String("root", "/var/lib/berth", "root of berth's persistent state")
	runRoot := fs.String("run-root", "/run/berth", "root of berth's runtime state")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	args := fs.Args()
	if len(args) != 2 || args[0] != "__supervise" {
		fmt.Fprintln(os.Stderr, "usage: berth-engine --root DIR --run-root DIR __supervise PROJECT (started by berth)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := supervisor.Run(ctx, supervisor.Paths{Root: *root, RunRoot: *runRoot}, args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
