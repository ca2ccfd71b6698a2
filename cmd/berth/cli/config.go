package cli

import "github.com/spf13/cobra"

func newConfigCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "config", Short: "Parse, resolve and render compose file in canonical format"}
}
