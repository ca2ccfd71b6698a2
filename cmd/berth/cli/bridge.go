package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"
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
		Short: "Convert the project into Kubernetes manifests, or run it on a cluster",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newBridgeConvertCommand(g), newBridgeApplyCommand(g), newBridgeDownCommand(g), newBridgePsCommand(g))
	return cmd
}

// clusterFlags are kubectl's flags for reaching a cluster, and -n.
type clusterFlags struct {
	opts      bridge.ClusterOptions
	namespace string
}

func (f *clusterFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.opts.Kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	fl.StringVar(&f.opts.Context, "context", "", "The kubeconfig context to use (default: its current context)")
	fl.StringVarP(&f.namespace, "namespace", "n", "", "Namespace of the project's objects (default: the project's name)")
}

// convertFor loads and converts the project, moved into -n's namespace.
func convertFor(cmd *cobra.Command, g *globals, cf *clusterFlags, opts bridge.Options) (*bridge.Result, error) {
	p, err := g.load(cmd.Context())
	if err != nil {
		return nil, err
	}
	opts.ImageName = p.ImageName
	r, err := bridge.Convert(p.Project, opts)
	if err != nil {
		return nil, err
	}
	if err := r.SetNamespace(cf.namespace); err != nil {
		return nil, err
	}
	return r, nil
}

func newBridgeApplyCommand(g *globals) *cobra.Command {
	var (
		cf      clusterFlags
		opts    bridge.Options
		dryRun  string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply [OPTIONS]",
		Short: "Apply the converted project to a cluster (server-side apply) and prune what it no longer has",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch dryRun {
			case "", "none":
			case "server":
			default:
				return fmt.Errorf("--dry-run=%s: only server (or none) is supported", dryRun)
			}
			r, err := convertFor(cmd, g, &cf, opts)
			if err != nil {
				return err
			}
			for _, w := range r.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "WARN "+w)
			}
			c, err := bridge.Connect(cmd.Context(), cf.opts)
			if err != nil {
				return err
			}
			err = c.Apply(cmd.Context(), r, bridge.ApplyOptions{
				DryRun: dryRun == "server", Wait: wait, Timeout: timeout, Log: cmd.OutOrStdout()})
			if err != nil {
				return fmt.Errorf("apply project %s to %s: %w", r.Project(), c.Host, err)
			}
			return nil
		},
	}
	cf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&dryRun, "dry-run", "", "server: have the API server check every object without storing it")
	f.Lookup("dry-run").NoOptDefVal = "server"
	f.BoolVar(&wait, "wait", false, "Wait for the Jobs a service depends on before applying it, then for Deployments to be available and Jobs complete")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "How long --wait waits")
	f.StringVar(&opts.InitImage, "init-image", "busybox", "Image of the init containers that wait for dependencies (needs sh, nc, nslookup)")
	f.BoolVar(&opts.AllowHostPath, "allow-hostpath", false, "Keep binds outside the project directory as hostPath volumes")
	f.StringVar(&opts.VolumeSize, "volume-size", "1Gi", "Size of a volume's claim when its x-berth extension gives none")
	return cmd
}

func newBridgeDownCommand(g *globals) *cobra.Command {
	var (
		cf      clusterFlags
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "down [OPTIONS]",
		Short: "Delete the project's objects from the cluster, and its namespace if berth made it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := convertFor(cmd, g, &cf, bridge.Options{})
			if err != nil {
				return err
			}
			c, err := bridge.Connect(cmd.Context(), cf.opts)
			if err != nil {
				return err
			}
			err = c.Down(cmd.Context(), r.Project(), r.Namespace, bridge.DownOptions{Timeout: timeout, Log: cmd.OutOrStdout()})
			if err != nil {
				return fmt.Errorf("remove project %s from %s: %w", r.Project(), c.Host, err)
			}
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "How long to wait for the objects to be gone")
	return cmd
}

func newBridgePsCommand(g *globals) *cobra.Command {
	var (
		cf     clusterFlags
		format string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List the project's pods on the cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" && !isTemplate(format) {
				return fmt.Errorf("unsupported format %q: use table or json", format)
			}
			r, err := convertFor(cmd, g, &cf, bridge.Options{})
			if err != nil {
				return err
			}
			c, err := bridge.Connect(cmd.Context(), cf.opts)
			if err != nil {
				return err
			}
			pods, err := c.Pods(cmd.Context(), r.Project(), r.Namespace)
			if err != nil {
				return fmt.Errorf("list pods of project %s on %s: %w", r.Project(), c.Host, err)
			}
			return printPods(cmd.OutOrStdout(), pods, format, quiet)
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&format, "format", "table", "Format the output: table, json (one object per line) or a Go template")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display pod names")
	return cmd
}

// podEntry is a pod in `bridge ps --format json`.
type podEntry struct {
	Name      string
	Namespace string
	Service   string
	Image     string
	Created   int64
	CreatedAt string
	State     string
	Status    string
	Ready     string
	Restarts  int32
	Node      string
	IP        string
	Ports     string
}

func newPodEntry(p bridge.Pod) podEntry {
	return podEntry{
		Name: p.Name, Namespace: p.Namespace, Service: p.Service, Image: p.Image,
		Created: p.Created.Unix(), CreatedAt: p.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		State: p.State, Status: p.Status, Ready: p.Ready, Restarts: p.Restarts, Node: p.Node, IP: p.IP, Ports: p.Ports,
	}
}

func printPods(out io.Writer, pods []bridge.Pod, format string, quiet bool) error {
	switch {
	case quiet:
		for _, p := range pods {
			fmt.Fprintln(out, p.Name)
		}
		return nil
	case format == "json":
		enc := json.NewEncoder(out)
		for _, p := range pods {
			if err := enc.Encode(newPodEntry(p)); err != nil {
				return err
			}
		}
		return nil
	case isTemplate(format):
		entries := make([]podEntry, len(pods))
		for i, p := range pods {
			entries[i] = newPodEntry(p)
		}
		return templateTable(out, format, entries)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIMAGE\tSERVICE\tCREATED\tSTATUS\tPORTS")
	now := time.Now()
	for _, p := range pods {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Image, p.Service,
			units.HumanDuration(now.Sub(p.Created))+" ago", p.Status, p.Ports)
	}
	return tw.Flush()
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
			opts.ImageName = p.ImageName
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
