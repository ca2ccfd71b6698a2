package cli

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
)

type imagePullFlags struct {
	quiet    bool
	platform string
	insecure []string
}

func newImagePullCommand(g *globals) *cobra.Command {
	f := &imagePullFlags{}
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			return runImagePull(cmd, s, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "Suppress verbose output")
	fl.StringVar(&f.platform, "platform", "", "Set platform if server is multi-platform capable (default linux/amd64)")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "Registry (host[:port]) to reach over plain HTTP (repeatable)")
	return cmd
}

func parseImagePlatform(s string) (*v1.Platform, error) {
	if s == "" {
		return nil, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return nil, fmt.Errorf("invalid platform %q: %w", s, err)
	}
	return p, nil
}

func runImagePull(cmd *cobra.Command, s *image.Store, ref string, f *imagePullFlags) error {
	out := cmd.OutOrStdout()
	r, err := image.ParseReference(ref, false)
	if err != nil {
		return err
	}
	platform, err := parseImagePlatform(f.platform)
	if err != nil {
		return err
	}
	opts := image.PullOptions{InsecureRegistries: insecureRegistryList(f.insecure), Platform: platform}
	var pr *pullProgress
	if !f.quiet {
		reg := r.Context().RegistryStr()
		if reg == "index.docker.io" {
			reg = "docker.io"
		}
		fmt.Fprintf(out, "%s: Pulling from %s\n", r.Identifier(), image.FamiliarName(reg+"/"+r.Context().RepositoryStr()))
		pr = newPullProgress(out)
		opts.Progress = pr.event
	}
	res, err := s.Pull(cmd.Context(), ref, opts)
	if pr != nil {
		pr.finish()
	}
	if err != nil {
		return imageErr(err)
	}
	if !f.quiet {
		fmt.Fprintf(out, "Digest: %s\n", res.Digest)
		if res.UpToDate {
			fmt.Fprintf(out, "Status: Image is up to date for %s\n", image.FamiliarName(res.Ref))
		} else {
			fmt.Fprintf(out, "Status: Downloaded newer image for %s\n", image.FamiliarName(res.Ref))
		}
	}
	fmt.Fprintln(out, res.Ref)
	return nil
}
