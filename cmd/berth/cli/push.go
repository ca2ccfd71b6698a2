package cli

import (
	"errors"
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
)

// newPushCommand is compose's `push`: the images of the services that are
// built (an image only pulled from a registry is already there).
func newPushCommand(g *globals) *cobra.Command {
	var quiet, ignoreFailures, includeDeps bool
	var insecure []string
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] [SERVICE...]",
		Short: "Push service images",
		RunE: func(cmd *cobra.Command, args []string) error {
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
			pushed := map[string]bool{}
			var errs []error
			for _, n := range names {
				svc := p.Services[n]
				if svc.Build == nil || svc.Image == "" || pushed[svc.Image] {
					continue
				}
				pushed[svc.Image] = true
				if !quiet {
					fmt.Fprintf(cmd.ErrOrStderr(), " %s Pushing\n", n)
				}
				_, err := s.Push(cmd.Context(), svc.Image, image.PushOptions{InsecureRegistries: insecureRegistryList(insecure)})
				switch {
				case err != nil && ignoreFailures:
					fmt.Fprintf(cmd.ErrOrStderr(), " %s Warning: %v\n", n, imageErr(err))
				case err != nil:
					errs = append(errs, fmt.Errorf("service %q: %w", n, imageErr(err)))
				case !quiet:
					fmt.Fprintf(cmd.ErrOrStderr(), " %s Pushed\n", n)
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Push without printing progress information")
	cmd.Flags().BoolVar(&ignoreFailures, "ignore-push-failures", false, "Push what it can and ignores images with push failures")
	cmd.Flags().BoolVar(&includeDeps, "include-deps", false, "Also push images of services declared as dependencies")
	cmd.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "Registry (host[:port]) to reach over plain HTTP (repeatable)")
	return cmd
}
