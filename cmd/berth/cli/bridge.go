package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/bridge"
	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/project"
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
		out      string
		overlay  string
		opts     bridge.Options
		push     bool
		registry string
		insecure []string
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
			if push {
				if err := pushBuilt(cmd, g, p, registry, insecure); err != nil {
					return err
				}
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
	f.BoolVar(&push, "push", false, "Push the images the project builds to --registry and write the pushed references")
	f.StringVar(&registry, "registry", "", "Registry (host[:port][/path]) the built images are pushed to with --push")
	f.StringArrayVar(&insecure, "insecure-registry", nil, "Registry (host[:port]) to reach over plain HTTP (repeatable)")
	return cmd
}

// pushBuilt tags every image the project builds under registry, pushes it,
// and makes its service refer to the pushed image by digest, which is what
// the cluster pulls. The service then counts as not built.
func pushBuilt(cmd *cobra.Command, g *globals, p *project.Project, registry string, insecure []string) error {
	if registry == "" {
		return errors.New("--push needs --registry")
	}
	registry = strings.TrimSuffix(registry, "/")
	names := p.ServiceNames()
	sort.Strings(names)
	s, err := g.openImageStore()
	if err != nil {
		return err
	}
	pushed := map[string]string{} // local image -> pushed reference
	for _, n := range names {
		svc := p.Services[n]
		if svc.Build == nil {
			continue
		}
		local := p.ImageName(svc)
		remote, ok := pushed[local]
		if !ok {
			named, err := reference.ParseNormalizedNamed(local)
			if err != nil {
				return fmt.Errorf("service %q: %w", n, err)
			}
			// The repository keeps its path without the source registry
			// (and without Docker Hub's "library/").
			path := reference.Path(named)
			if reference.Domain(named) == "docker.io" {
				path = reference.FamiliarName(named)
			}
			target := registry + "/" + path
			if tagged, ok := reference.TagNameOnly(named).(reference.Tagged); ok {
				target += ":" + tagged.Tag()
			}
			if err := s.Tag(local, target); err != nil {
				return fmt.Errorf("service %q: %w (build it first)", n, imageErr(err))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), " %s Pushing %s\n", n, target)
			digest, err := s.Push(cmd.Context(), target, image.PushOptions{InsecureRegistries: insecureRegistryList(insecure)})
			if err != nil {
				return fmt.Errorf("service %q: %w", n, imageErr(err))
			}
			remote = target + "@" + digest
			pushed[local] = remote
		}
		svc.Image, svc.Build = remote, nil
		p.Services[n] = svc
	}
	return nil
}
