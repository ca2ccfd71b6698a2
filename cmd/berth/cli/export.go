package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

// serviceContainer finds replica index (1 when 0) of service, one-offs
// aside, with the client of its project's supervisor.
func serviceContainer(cmd *cobra.Command, g *globals, service string, index int) (*supervisor.Record, *supervisor.Client, error) {
	ctx := cmd.Context()
	proj, p, err := g.projectName(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := checkServices(p, []string{service}); err != nil {
		return nil, nil, err
	}
	recs, client, err := g.records(ctx, proj)
	if err != nil {
		return nil, nil, err
	}
	index = max(index, 1)
	for i := range recs {
		r := &recs[i]
		if r.Service == service && r.Number == index && r.Labels[model.LabelOneoff] != "True" {
			return r, client, nil
		}
	}
	return nil, nil, fmt.Errorf("service %q has no container #%d", service, index)
}

func newExportCommand(g *globals) *cobra.Command {
	var output string
	var index int
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] SERVICE",
		Short: "Export a service container's filesystem as a tar archive",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, c, err := serviceContainer(cmd, g, args[0], index)
			if err != nil {
				return err
			}
			var out io.Writer = cmd.OutOrStdout()
			if output == "" && isTerminal(out) {
				return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
			}
			// The supervisor archives the container's root filesystem, as
			// cp does its paths; mounts are not part of it.
			rc, err := c.CopyFrom(cmd.Context(), r.ID, "/", false)
			if err != nil {
				return fmt.Errorf("failed to export container %s: %w", r.Name, err)
			}
			defer rc.Close()
			if output != "" {
				f, err := createOutput(output)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
			}
			if _, err := io.Copy(out, rc); err != nil {
				return fmt.Errorf("failed to export container %s: %w", r.Name, err)
			}
			if f, ok := out.(*os.File); ok && output != "" {
				return f.Close()
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	cmd.Flags().IntVar(&index, "index", 0, "index of the container if service has multiple replicas.")
	return cmd
}
