package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
)

// openImageStore opens the image store under berth's root.
func (g *globals) openImageStore() (*image.Store, error) {
	return image.Open(filepath.Join(g.root, "image"))
}

func newImageCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage images",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(
		newImagePullCommand(g),
		newImageListCommand(g),
		newImageRemoveCommand(g),
		newImageInspectCommand(g),
		newImageLoadCommand(g),
		newImageImportCommand(g),
		newImageSaveCommand(g),
		newImagePruneCommand(g),
		newImageTagCommand(g),
		newImageHistoryCommand(g),
	)
	return cmd
}

// imageErr reduces a NotFound error to docker's "No such image: X".
func imageErr(err error) error {
	var nf *image.NotFoundError
	if errors.As(err, &nf) {
		return nf
	}
	return err
}

// insecureRegistryList merges --insecure-registry with $BERTH_INSECURE_REGISTRIES
// (comma-separated).
func insecureRegistryList(flag []string) []string {
	out := append([]string(nil), flag...)
	for _, r := range strings.Split(os.Getenv("BERTH_INSECURE_REGISTRIES"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// --- rm ---------------------------------------------------------------------

func newImageRemoveCommand(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] IMAGE [IMAGE...]",
		Aliases: []string{"remove", "rmi"},
		Short:   "Remove one or more images",
		Args:    cobra.MinimumNArgs(1),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s, err := g.openImageStore()
		if err != nil {
			return err
		}
		out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
		failed := false
		for _, ref := range args {
			rm, err := s.Remove(ref, force)
			printImageRemovals(out, rm, false)
			if err != nil {
				fmt.Fprintln(errOut, imageErr(err))
				failed = true
			}
		}
		if failed {
			return &exitError{code: 1}
		}
		return nil
	}
	return cmd
}

func printImageRemovals(out io.Writer, rm []image.Removal, lower bool) {
	u, d := "Untagged: ", "Deleted: "
	if lower {
		u, d = "untagged: ", "deleted: "
	}
	for _, r := range rm {
		if r.Untagged != "" {
			fmt.Fprintln(out, u+image.FamiliarName(r.Untagged))
		}
		if r.Deleted != "" {
			fmt.Fprintln(out, d+r.Deleted)
		}
	}
}

// --- prune / tag --------------------------------------------------------------

func newImagePruneCommand(g *globals) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s, err := g.openImageStore()
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if !force {
			what := "all dangling images"
			if all {
				what = "all images without at least one container associated to them"
			}
			fmt.Fprintf(out, "WARNING! This will remove %s.\nAre you sure you want to continue? [y/N] ", what)
			line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
				return nil
			}
		}
		rm, reclaimed, err := s.Prune(all)
		if len(rm) > 0 {
			fmt.Fprintln(out, "Deleted Images:")
			printImageRemovals(out, rm, true)
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "Total reclaimed space: %s\n", units.HumanSizeWithPrecision(float64(reclaimed), 3))
		return err
	}
	return cmd
}

func newImageTagCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			return imageErr(s.Tag(args[0], args[1]))
		},
	}
}
