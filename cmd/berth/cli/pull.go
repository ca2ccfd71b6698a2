package cli

import (
	"errors"
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
)

// newPullCommand is compose's `pull`: the images of the project's services.
func newPullCommand(g *globals) *cobra.Command {
	var quiet, ignoreFailures, includeDeps, ignoreBuildable bool
	var policy string
	var insecure []string
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] [SERVICE...]",
		Short: "Pull service images",
		RunE: func(cmd *cobra.Command, args []string) error {
			switch policy {
			case "", "missing", "always":
			default:
				return fmt.Errorf("invalid pull policy %q: use missing or always", policy)
			}
			p, err := g.loadNamed(cmd.Context(), args)
			if err != nil {
				return err
			}
			if err := checkServices(p, args); err != nil {
				return err
			}
			names := selectServices(p, args, includeDeps)
			sort.Strings(names)
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			seen := map[string]bool{}
			var errs []error
			for _, n := range names {
				svc, ok := p.Services[n]
				if !ok {
					return fmt.Errorf("no such service: %s", n)
				}
				if svc.Image == "" || seen[svc.Image] || ignoreBuildable && svc.Build != nil {
					continue
				}
				seen[svc.Image] = true
				if policy == "missing" && !imageMissing(s, svc.Image) {
					continue
				}
				if !quiet {
					fmt.Fprintf(cmd.ErrOrStderr(), " %s Pulling\n", n)
				}
				_, err := s.Pull(cmd.Context(), svc.Image, image.PullOptions{InsecureRegistries: insecureRegistryList(insecure)})
				switch {
				case err != nil && ignoreFailures:
					fmt.Fprintf(cmd.ErrOrStderr(), " %s Warning: %v\n", n, imageErr(err))
				case err != nil:
					errs = append(errs, fmt.Errorf("service %q: %w", n, imageErr(err)))
				case !quiet:
					fmt.Fprintf(cmd.ErrOrStderr(), " %s Pulled\n", n)
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Pull without printing progress information")
	cmd.Flags().StringVar(&policy, "policy", "", `Apply pull policy ("missing"|"always")`)
	cmd.Flags().BoolVar(&includeDeps, "include-deps", false, "Also pull services declared as dependencies")
	cmd.Flags().BoolVar(&ignoreBuildable, "ignore-buildable", false, "Ignore images that can be built")
	cmd.Flags().BoolVar(&ignoreFailures, "ignore-pull-failures", false, "Pull what it can and ignores images with pull failures")
	cmd.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "Registry (host[:port]) to reach over plain HTTP (repeatable)")
	return cmd
}

// newCreateCommand is compose's `create`: `up --no-start`.
func newCreateCommand(g *globals) *cobra.Command {
	f := &upFlags{noStart: true, detach: true}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [SERVICE...]",
		Short: "Creates containers for a service",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUp(cmd, g, f, args)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.forceRecreate, "force-recreate", false, "Recreate containers even if their configuration and image haven't changed")
	fl.BoolVar(&f.noRecreate, "no-recreate", false, "If containers already exist, don't recreate them")
	fl.BoolVar(&f.removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	fl.StringArrayVar(&f.scale, "scale", nil, "Scale SERVICE to NUM instances. Overrides the `scale` setting in the Compose file if present")
	addBuildFlags(cmd, f)
	return cmd
}
