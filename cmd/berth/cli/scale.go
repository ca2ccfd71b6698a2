package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

func newScaleCommand(g *globals) *cobra.Command {
	var noDeps bool
	cmd := &cobra.Command{
		Use:   "scale [SERVICE=REPLICAS...]",
		Short: "Scale services",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			scale, err := parseScale(args)
			if err != nil {
				return err
			}
			p, err := g.load(ctx)
			if err != nil {
				return err
			}
			var services []string
			for name := range scale {
				if _, ok := p.Services[name]; !ok {
					return fmt.Errorf("no such service: %s", name)
				}
				services = append(services, name)
			}
			m, err := g.model(p)
			if err != nil {
				return err
			}
			c, err := supervisor.Connect(ctx, g.paths(), p.Name)
			if err != nil {
				return err
			}
			req := supervisor.UpRequest{Model: *m, Services: services, NoDeps: noDeps, Scale: scale, Parallel: g.parallel}
			req.MaxReplicas, _ = model.MaxReplicas() // checked by Model
			return withSteps(cmd.ErrOrStderr(), func(progress func(supervisor.Event)) error {
				return c.Up(ctx, req, progress)
			})
		},
	}
	cmd.Flags().BoolVar(&noDeps, "no-deps", false, "Don't start linked services")
	return cmd
}
