package cli

import "github.com/spf13/cobra"

func newLoginCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "login", Short: "Log in to a registry"}
}

func newLogoutCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "logout", Short: "Log out from a registry"}
}
