package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/compose-spec/compose-go/v2/template"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/project"
)

type configFlags struct {
	format   string
	services bool
	volumes  bool
	networks bool
	profiles bool
	images   bool
	quiet    bool
	hash     string
	output   string

	load                   project.Options
	environment, variables bool
	resolveImageDigests    bool
}

func newConfigCommand(g *globals) *cobra.Command {
	f := &configFlags{}
	cmd := &cobra.Command{
		Use:   "config [OPTIONS] [SERVICE...]",
		Short: "Parse, resolve and render compose file in canonical format",
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.variables {
				o := f.load
				o.Files, o.ProjectDir, o.Name, o.Profiles, o.EnvFiles = g.files, g.projectDir, g.name, g.profiles, g.envFiles
				vars, err := project.Variables(cmd.Context(), o)
				if err != nil {
					return err
				}
				return printVariables(cmd.OutOrStdout(), vars, f.format)
			}
			p, err := g.loadWith(cmd.Context(), f.load)
			if err != nil {
				return err
			}
			if f.resolveImageDigests {
				if err := g.resolveImageDigests(cmd.Context(), p); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if f.output != "" {
				file, err := createOutput(f.output)
				if err != nil {
					return err
				}
				defer file.Close()
				out = file
			}
			return runConfig(out, p, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.format, "format", "yaml", "Format the output. Values: [yaml | json]")
	fl.BoolVar(&f.services, "services", false, "Print the service names, one per line")
	fl.BoolVar(&f.volumes, "volumes", false, "Print the volume names, one per line")
	fl.BoolVar(&f.networks, "networks", false, "Print the network names, one per line")
	fl.BoolVar(&f.profiles, "profiles", false, "Print the profile names, one per line")
	fl.BoolVar(&f.images, "images", false, "Print the image names, one per line")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "Only validate the configuration, don't print anything")
	fl.StringVar(&f.hash, "hash", "", `Print the service config hash, one per line ("*" for all services)`)
	fl.StringVarP(&f.output, "output", "o", "", "Save to file (default to stdout)")
	fl.BoolVar(&f.load.NoInterpolate, "no-interpolate", false, "Don't interpolate environment variables")
	fl.BoolVar(&f.load.NoNormalize, "no-normalize", false, "Don't normalize compose model")
	fl.BoolVar(&f.load.NoPathResolution, "no-path-resolution", false, "Don't resolve file paths")
	fl.BoolVar(&f.load.NoEnvResolution, "no-env-resolution", false, "Don't resolve service env files")
	fl.BoolVar(&f.load.NoConsistency, "no-consistency", false, "Don't check model consistency - warning: may produce invalid Compose output")
	fl.BoolVar(&f.environment, "environment", false, "Print environment used for interpolation.")
	fl.BoolVar(&f.variables, "variables", false, "Print model variables and default values.")
	fl.BoolVar(&f.resolveImageDigests, "resolve-image-digests", false, "Pin image tags to digests")
	return cmd
}

// resolveImageDigests pins every image of p to its digest, as compose does
// (name:tag@sha256:...): from the store for images pulled from that
// repository, else from the registry.
func (g *globals) resolveImageDigests(ctx context.Context, p *project.Project) error {
	store, err := g.openImageStore()
	if err != nil {
		return err
	}
	resolved, err := p.WithImagesResolved(func(named reference.Named) (digest.Digest, error) {
		d, err := store.ResolveDigest(ctx, named.String(), image.PullOptions{})
		if err != nil {
			return "", err
		}
		return digest.Parse(d)
	})
	if err != nil {
		return err
	}
	p.Project = resolved
	return nil
}

func runConfig(out io.Writer, p *project.Project, f *configFlags, args []string) error {
	if len(args) > 0 {
		sel, err := p.WithSelectedServices(args)
		if err != nil {
			return err
		}
		p = &project.Project{Project: sel, NameSeparator: p.NameSeparator}
	}
	switch {
	case f.quiet:
		return nil
	case f.environment:
		var env []string
		for k, v := range p.Environment {
			env = append(env, k+"="+v)
		}
		return lines(out, env)
	case f.services:
		return lines(out, p.ServiceNames())
	case f.volumes:
		return lines(out, p.VolumeNames())
	case f.networks:
		return lines(out, p.NetworkNames())
	case f.profiles:
		return lines(out, p.AllProfiles())
	case f.images:
		var imgs []string
		for _, name := range p.ServiceNames() {
			imgs = append(imgs, p.Services[name].Image)
		}
		return lines(out, imgs)
	case f.hash != "":
		names := []string{f.hash}
		if f.hash == "*" {
			names = p.ServiceNames()
		}
		for _, n := range names {
			s, ok := p.Services[n]
			if !ok {
				return fmt.Errorf("no such service: %s", n)
			}
			h, err := project.ServiceHash(s)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s %s\n", n, h)
		}
		return nil
	}
	var b []byte
	var err error
	switch f.format {
	case "yaml", "":
		b, err = p.MarshalYAML()
	case "json":
		b, err = p.MarshalJSON()
		if err == nil {
			b, err = indentJSON(b)
		}
	default:
		return fmt.Errorf("unsupported format %q", f.format)
	}
	if err != nil {
		return err
	}
	if !f.load.NoInterpolate {
		// Left as written, the file's own $$ is already there.
		b = escapeDollars(b)
	}
	_, err = out.Write(b)
	return err
}

// escapeDollars writes every $ left after interpolation back as $$, as
// docker compose does: the output is itself a compose file, and reading it
// again must give the same strings rather than interpolating them a second
// time. Containers still get a single $, from the loaded project.
func escapeDollars(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte("$"), []byte("$$"))
}

func lines(out io.Writer, items []string) error {
	sort.Strings(items)
	for _, s := range items {
		if _, err := fmt.Fprintln(out, s); err != nil {
			return err
		}
	}
	return nil
}

func indentJSON(b []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(v, "", "    ")
	return append(out, '\n'), err
}

// printVariables is config --variables: a table as compose prints it, or
// JSON keyed by name.
func printVariables(out io.Writer, vars map[string]template.Variable, format string) error {
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	switch format {
	case "json":
		b, err := json.MarshalIndent(vars, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	case "yaml", "", "table":
	default:
		return fmt.Errorf("unsupported format %q", format)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tREQUIRED\tDEFAULT VALUE\tALTERNATE VALUE")
	for _, n := range names {
		v := vars[n]
		fmt.Fprintf(tw, "%s\t%t\t%s\t%s\n", n, v.Required, v.DefaultValue, v.PresenceValue)
	}
	return tw.Flush()
}
