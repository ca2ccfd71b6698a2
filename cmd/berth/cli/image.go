package cli

import "github.com/spf13/cobra"

func newImageCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "image", Short: "Manage images"}
}
