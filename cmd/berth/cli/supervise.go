package cli

import (
	"context"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/supervisor"
)

// newSuperviseCommand is the detached supervisor process of one project,
// started by the other commands; it is not meant to be run by hand.
func newSuperviseCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "__supervise PROJECT",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return supervisor.Run(ctx, g.paths(), args[0])
		},
	}
}
