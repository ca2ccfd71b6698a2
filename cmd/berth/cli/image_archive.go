package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
)

// imageStdinToTemp copies standard input to a temp file in dir (archives need
// random access).
func imageStdinToTemp(in io.Reader, dir string) (string, func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	f, err := os.CreateTemp(dir, "stdin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	if _, err := io.Copy(f, in); err != nil {
		f.Close()
		cleanup()
		return "", nil, err
	}
	if err := f.Close(); err != nil {
		cleanup()
		return "", nil, err
	}
	return f.Name(), cleanup, nil
}

func newImageLoadCommand(g *globals) *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive (docker save or OCI layout) or STDIN",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			path := input
			if path == "" || path == "-" {
				if isTerminal(os.Stdin) && cmd.InOrStdin() == os.Stdin {
					return errors.New("requested load from stdin, but stdin is empty")
				}
				p, cleanup, err := imageStdinToTemp(cmd.InOrStdin(), filepath.Join(s.Root(), "tmp"))
				if err != nil {
					return err
				}
				defer cleanup()
				path = p
			}
			out := cmd.OutOrStdout()
			var progress image.ProgressFunc
			if !quiet && isTerminal(out) {
				progress = newPullProgress(out).event
			}
			imgs, err := s.Load(cmd.Context(), path, progress)
			if err != nil {
				return err
			}
			for _, img := range imgs {
				if len(img.RepoTags) == 0 {
					fmt.Fprintf(out, "Loaded image ID: %s\n", img.ID)
				}
				for _, t := range img.RepoTags {
					fmt.Fprintf(out, "Loaded image: %s\n", image.FamiliarName(t))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return cmd
}

func newImageImportCommand(g *globals) *cobra.Command {
	var changes []string
	var message string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			opts := image.ImportOptions{Changes: changes, Message: message}
			var img *image.Image
			if args[0] == "-" {
				// Read once, as it arrives: no copy in a file.
				img, err = s.ImportReader(cmd.Context(), cmd.InOrStdin(), 0, "-", ref, opts)
			} else {
				img, err = s.Import(cmd.Context(), args[0], ref, opts)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), img.ID)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image (repeatable)")
	cmd.Flags().StringVarP(&message, "message", "m", "", "Set commit message for imported image")
	return cmd
}

func newImageSaveCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			if output != "" && output != "-" {
				return imageErr(s.SaveFile(cmd.Context(), output, args...))
			}
			out := cmd.OutOrStdout()
			if isTerminal(out) {
				return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
			}
			return imageErr(s.Save(cmd.Context(), out, args...))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}
