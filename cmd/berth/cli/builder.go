package cli

import (
	"bufio"
	"fmt"
	"path/filepath"
	"strings"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/build"
)

// newBuilderCommand is docker's `builder`: the build cache.
func newBuilderCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "builder",
		Short: "Manage builds",
		Args:  cobra.NoArgs,
	}
	var all, force bool
	prune := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove build cache",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if !force {
				fmt.Fprint(out, "WARNING! This will remove all build cache.\nAre you sure you want to continue? [y/N] ")
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
					return nil
				}
			}
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			reclaimed, _, err := build.Prune(s, filepath.Join(g.root, "build", "cache"))
			fmt.Fprintf(out, "Total reclaimed space: %s\n", units.HumanSizeWithPrecision(float64(reclaimed), 3))
			return err
		},
	}
	prune.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused build cache, not just dangling ones")
	prune.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.AddCommand(prune)
	return cmd
}
