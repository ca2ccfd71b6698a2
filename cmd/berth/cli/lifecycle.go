package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/internal/names"
	"github.com/berthrun/berth/project"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

func (g *globals) paths() supervisor.Paths {
	return supervisor.Paths{Root: g.root, RunRoot: g.runRoot}
}

// projectName is the project the command is about: from the compose file
// when one can be loaded, else from -p or COMPOSE_PROJECT_NAME alone, as
// compose lets `down`, `ps` and `logs` work without the file.
func (g *globals) projectName(ctx context.Context) (string, *project.Project, error) {
	p, err := g.load(ctx)
	if err == nil {
		return p.Name, p, nil
	}
	name := g.name
	if name == "" {
		name = os.Getenv("COMPOSE_PROJECT_NAME")
	}
	if name != "" && len(g.files) == 0 {
		// The name alone becomes directories under the roots: hold it to
		// compose's rule, as loading the file would have.
		if err := names.Project(name); err != nil {
			return "", nil, err
		}
		return name, nil, nil
	}
	return "", nil, err
}

// records returns the project's containers as the supervisor sees them,
// starting (and so adopting with) a supervisor when containers exist but
// none runs. With no containers it starts nothing.
func (g *globals) records(ctx context.Context, proj string) ([]supervisor.Record, *supervisor.Client, error) {
	recs, err := supervisor.LoadRecords(g.paths(), proj)
	if err != nil {
		return nil, nil, err
	}
	if len(recs) == 0 {
		return nil, nil, nil
	}
	c, err := supervisor.Connect(ctx, g.paths(), proj)
	if err != nil {
		return nil, nil, err
	}
	out, err := c.Ps(ctx)
	return out, c, err
}

// serviceRecords starts the commands that act on one service's containers
// (exec, attach, cp): the service checked against the compose file when
// there is one, then the project's records and its supervisor.
func (g *globals) serviceRecords(ctx context.Context, service string) ([]supervisor.Record, *supervisor.Client, error) {
	proj, p, err := g.projectName(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := checkServices(p, []string{service}); err != nil {
		return nil, nil, err
	}
	return g.records(ctx, proj)
}

// timeoutFlag is compose's -t/--timeout in seconds; nil when not given.
type timeoutFlag struct{ v *int }

func (t *timeoutFlag) duration() *time.Duration {
	if t.v == nil || *t.v < 0 {
		return nil
	}
	d := time.Duration(*t.v) * time.Second
	return &d
}

func addTimeout(cmd *cobra.Command, t *timeoutFlag, usage string) {
	var v int
	cmd.Flags().IntVarP(&v, "timeout", "t", 0, usage)
	cmd.PreRun = func(cmd *cobra.Command, _ []string) {
		if cmd.Flags().Changed("timeout") {
			t.v = &v
		}
	}
}

func newDownCommand(g *globals) *cobra.Command {
	var removeOrphans, volumes bool
	var rmi string
	var t timeoutFlag
	cmd := &cobra.Command{
		Use:   "down [OPTIONS] [SERVICES]",
		Short: "Stop and remove containers, networks",
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			ctx := cmd.Context()
			switch rmi {
			case "", "local", "all":
			default:
				return fmt.Errorf("invalid value for --rmi: %q", rmi)
			}
			proj, p, err := g.projectName(ctx)
			if err != nil {
				return err
			}
			if rmi != "" && p != nil {
				defer func() {
					if err == nil {
						err = removeServiceImages(cmd, g, p, rmi == "all")
					}
				}()
			}
			// With no container left, a supervisor is still needed to remove
			// the project's networks, and its volumes with -v.
			left, err := supervisor.HasLeftovers(g.paths(), proj)
			if err != nil {
				return err
			}
			if !left && !volumes {
				fmt.Fprintf(cmd.ErrOrStderr(), "WARN No resource found to remove for project %q.\n", proj)
				return nil
			}
			c, err := supervisor.Connect(ctx, g.paths(), proj)
			if err != nil {
				return err
			}
			req := supervisor.DownRequest{Timeout: t.duration(), RemoveOrphans: removeOrphans, Volumes: volumes, Parallel: g.parallel}
			if p != nil {
				req.Services = p.ServiceNames()
				for key, v := range p.Volumes {
					if !bool(v.External) {
						req.VolumeNames = append(req.VolumeNames, p.VolumeName(key))
					}
				}
				for key := range p.Networks {
					req.NetworkNames = append(req.NetworkNames, p.NetworkName(key))
				}
			}
			return withSteps(cmd.ErrOrStderr(), func(progress func(supervisor.Event)) error {
				return c.Down(ctx, req, progress)
			})
		},
	}
	cmd.Flags().BoolVar(&removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	cmd.Flags().StringVar(&rmi, "rmi", "", `Remove images used by services. "local" remove only images that don't have a custom tag ("local"|"all")`)
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "Remove named volumes declared in the \"volumes\" section of the Compose file and anonymous volumes attached to containers")
	addTimeout(cmd, &t, "Specify a shutdown timeout in seconds")
	return cmd
}

// withDependents adds, transitively, the services that depend on names.
func withDependents(p *project.Project, names []string) []string {
	return serviceClosure(names, func(n string) []string {
		var users []string
		for _, other := range p.ServiceNames() {
			if _, ok := p.Services[other].DependsOn[n]; ok {
				users = append(users, other)
			}
		}
		return users
	})
}

// serviceClosure returns names and, transitively, the services next gives
// for each, in the order they are first reached (build and restart rely
// on it: the names asked for come first).
func serviceClosure(names []string, next func(string) []string) []string {
	seen := map[string]bool{}
	var out []string
	var visit func(string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		out = append(out, n)
		for _, m := range next(n) {
			visit(m)
		}
	}
	for _, n := range names {
		visit(n)
	}
	return out
}

// removeServiceImages is down --rmi: the images of the project's services,
// all of them or only those named after the project because the service
// has a build and no image of its own ("local"). An image already gone is
// no error.
func removeServiceImages(cmd *cobra.Command, g *globals, p *project.Project, all bool) error {
	store, err := g.openImageStore()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, name := range p.ServiceNames() {
		svc := p.Services[name]
		if !all && (svc.Image != "" || svc.Build == nil) {
			continue
		}
		ref := p.ImageName(svc)
		if ref == "" || seen[ref] {
			continue
		}
		seen[ref] = true
		_, err := store.Remove(ref, false)
		var nf *image.NotFoundError
		switch {
		case err == nil:
			fmt.Fprintf(cmd.ErrOrStderr(), " Image %s  Removed\n", ref)
		case errors.As(err, &nf) || errors.Is(err, image.ErrNotFound):
		default:
			return fmt.Errorf("removing image %s: %w", ref, err)
		}
	}
	return nil
}

// newContainersCommand builds start, stop, restart, kill, rm, pause and unpause.
func newContainersCommand(g *globals, op, use, short string) *cobra.Command {
	var t timeoutFlag
	var signal string
	var force, stop, volumes, wait, noDeps bool
	var index, waitTimeout int
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			proj, p, err := g.projectName(ctx)
			if err != nil {
				return err
			}
			if err := checkServices(p, args); err != nil {
				return err
			}
			recs, c, err := g.records(ctx, proj)
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				if op == "rm" {
					fmt.Fprintln(cmd.ErrOrStderr(), "No stopped containers")
					return nil
				}
				return fmt.Errorf("no container found for project %q", proj)
			}
			if op == "restart" && !noDeps && p != nil && len(args) > 0 {
				// As compose: the services that depend on those named
				// restart with them.
				args = withDependents(p, args)
			}
			req := supervisor.ContainersRequest{Services: args, Index: index, Timeout: t.duration(), Signal: signal, Stop: stop, Volumes: volumes, Parallel: g.parallel}
			switch {
			case op == "kill" && !force && p != nil && len(args) == 0:
				// As compose: without --remove-orphans, kill leaves the
				// containers of services the file no longer defines.
				req.Services = servicesIn(recs, p.ServiceNames())
				if len(req.Services) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "no container to kill")
					return nil
				}
			case op == "rm":
				// Running containers stay unless --stop, with -f or not.
				names := removable(recs, args, stop)
				if len(names) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "No stopped containers")
					return nil
				}
				if !force {
					fmt.Fprintf(cmd.OutOrStdout(), "Going to remove %s\nAre you sure? [yN] ", strings.Join(names, ", "))
					if !confirmed(cmd.InOrStdin()) {
						return nil
					}
				}
			}
			if err := withSteps(cmd.ErrOrStderr(), func(progress func(supervisor.Event)) error {
				return c.Containers(ctx, op, req, progress)
			}); err != nil {
				return err
			}
			if wait {
				return waitHealthy(ctx, cmd.ErrOrStderr(), c, waitTimeout)
			}
			return nil
		},
	}
	switch op {
	case "start":
		cmd.Flags().BoolVar(&wait, "wait", false, "Wait for services to be running|healthy. Implies detached mode.")
		cmd.Flags().IntVar(&waitTimeout, "wait-timeout", 0, "Maximum duration in seconds to wait for the project to be running|healthy")
	case "stop", "restart":
		addTimeout(cmd, &t, "Specify a shutdown timeout in seconds")
		if op == "restart" {
			cmd.Flags().BoolVar(&noDeps, "no-deps", false, "Don't restart dependent services")
		}
	case "kill":
		cmd.Flags().StringVarP(&signal, "signal", "s", "SIGKILL", "SIGNAL to send to the container")
		cmd.Flags().BoolVar(&force, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	case "rm":
		cmd.Flags().BoolVarP(&force, "force", "f", false, "Don't ask to confirm removal")
		cmd.Flags().BoolVarP(&stop, "stop", "s", false, "Stop the containers, if required, before removing")
		cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "Remove any anonymous volumes attached to containers")
	}
	if op != "rm" && op != "kill" {
		cmd.Flags().IntVar(&index, "index", 0, "index of the container if service has multiple replicas")
	}
	return cmd
}

// parseScale reads --scale SERVICE=NUM flags; a count over the replica
// ceiling fails before anything is asked of the supervisor.
func parseScale(vals []string) (map[string]int, error) {
	limit, err := model.MaxReplicas()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, v := range vals {
		name, num, ok := strings.Cut(v, "=")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 0 || name == "" {
			return nil, fmt.Errorf("invalid scale %q: use SERVICE=NUM", v)
		}
		if err := model.CheckReplicas(name, n, limit); err != nil {
			return nil, err
		}
		out[name] = n
	}
	return out, nil
}

// servicesIn returns the services among want that have containers.
func servicesIn(recs []supervisor.Record, want []string) []string {
	var out []string
	for _, r := range recs {
		if slices.Contains(want, r.Service) && !slices.Contains(out, r.Service) {
			out = append(out, r.Service)
		}
	}
	return out
}

// removable names the containers rm removes: those of services (all when
// empty) that do not run, or all of them with --stop.
func removable(recs []supervisor.Record, services []string, stop bool) []string {
	var out []string
	for _, r := range recs {
		if len(services) > 0 && !slices.Contains(services, r.Service) {
			continue
		}
		if !stop && (r.State.Status == supervisor.StatusRunning || r.State.Status == supervisor.StatusPaused) {
			continue
		}
		out = append(out, r.Name)
	}
	return out
}
