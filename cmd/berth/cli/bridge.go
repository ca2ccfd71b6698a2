package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/bridge"
)

// newBridgeCommand groups the commands that take the project to a
// Kubernetes cluster.
func newBridgeCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bridge",
		Short: "Convert the project into Kubernetes manifests",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newBridgeConvertCommand(g))
	return cmd
}

func newBridgeConvertCommand(g *globals) *cobra.Command {
	var (
		out     string
		overlay string
		opts    bridge.Options
	)
	cmd := &cobra.Command{
		Use:   "convert [OPTIONS]",
		Short: "Write the project as Kubernetes manifests in a Kustomize layout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.load(cmd.Context())
			if err != nil {
				return err
			}
			r, err := bridge.Convert(p.Project, opts)
			if err != nil {
				return err
			}
			for _, w := range r.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "WARN "+w)
			}
			return bridge.Write(r, out, overlay)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "out", "The output directory for the Kubernetes resources")
	f.StringVar(&overlay, "overlay", "default", "Name of the Kustomize overlay written beside base/")
	f.StringVar(&opts.InitImage, "init-image", "busybox", "Image of the init containers that wait for dependencies (needs sh, nc, nslookup)")
	f.BoolVar(&opts.AllowHostPath, "allow-hostpath", false, "Keep binds outside the project directory as hostPath volumes")
	f.StringVar(&opts.VolumeSize, "volume-size", "1Gi", "Size of a volume's claim when its x-berth extension gives none")
	return cmd
}
