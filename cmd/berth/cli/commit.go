package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/supervisor"
)

type commitFlags struct {
	author, message string
	changes         []string
	pause           bool
	index           int
}

func newCommitCommand(g *globals) *cobra.Command {
	f := &commitFlags{}
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] SERVICE [REPOSITORY[:TAG]]",
		Short: "Create a new image from a service container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			return runCommit(cmd, g, f, args[0], ref)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.author, "author", "a", "", `Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`)
	fl.StringArrayVarP(&f.changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	fl.IntVar(&f.index, "index", 0, "index of the container if service has multiple replicas.")
	fl.StringVarP(&f.message, "message", "m", "", "Commit message")
	fl.BoolVarP(&f.pause, "pause", "p", true, "Pause container during commit")
	return cmd
}

// runCommit makes an image of the container's filesystem (one layer, its
// whole root filesystem as the supervisor archives it for export) with the
// container's configuration: its image's, with the command, environment,
// working directory and user it runs with.
func runCommit(cmd *cobra.Command, g *globals, f *commitFlags, service, ref string) error {
	ctx := cmd.Context()
	r, c, err := serviceContainer(cmd, g, service, f.index)
	if err != nil {
		return err
	}
	s, err := g.openImageStore()
	if err != nil {
		return err
	}
	base, err := s.V1Image(r.ImageID)
	if err != nil {
		return fmt.Errorf("image of %s: %w", r.Name, err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return err
	}
	cfg := cf.Config.DeepCopy()
	if r.Config.Entrypoint != nil {
		cfg.Entrypoint, cfg.Cmd = r.Config.Entrypoint, nil
	}
	if r.Config.Command != nil {
		cfg.Cmd = r.Config.Command
	}
	cfg.Env = r.Spec.Env
	if r.Config.WorkingDir != "" {
		cfg.WorkingDir = r.Config.WorkingDir
	}
	if r.Config.User != "" {
		cfg.User = r.Config.User
	}

	tmp, err := os.CreateTemp(filepath.Join(s.Root(), "tmp"), "commit-*.tar")
	if err != nil {
		tmp, err = os.CreateTemp("", "berth-commit-*.tar")
		if err != nil {
			return err
		}
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	paused := false
	if f.pause && r.State.Status == supervisor.StatusRunning {
		if err := c.Containers(ctx, "pause", supervisor.ContainersRequest{Services: []string{service}, Index: r.Number}, nil); err == nil {
			paused = true
		}
	}
	err = copyRootfs(ctx, c, r.ID, tmp)
	if paused {
		_ = c.Containers(context.Background(), "unpause", supervisor.ContainersRequest{Services: []string{service}, Index: r.Number}, nil)
	}
	if err != nil {
		return fmt.Errorf("failed to commit container %s: %w", r.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	msg := f.message
	if msg == "" {
		msg = "commit of " + r.Name
	}
	img, err := s.Import(ctx, tmp.Name(), ref, image.ImportOptions{Config: cfg, Changes: f.changes, Message: msg, Author: f.author})
	if err != nil {
		return fmt.Errorf("failed to commit container %s: %w", r.Name, imageErr(err))
	}
	fmt.Fprintln(cmd.OutOrStdout(), img.ID)
	return nil
}

func copyRootfs(ctx context.Context, c *supervisor.Client, id string, w io.Writer) error {
	rc, err := c.CopyFrom(ctx, id, "/", false)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}
