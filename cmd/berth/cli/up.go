package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/project"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

type upFlags struct {
	detach, noDeps, forceRecreate, noRecreate, noStart, removeOrphans bool
	alwaysRecreateDeps, renewAnonVolumes                              bool
	abortOnExit, abortOnFailure, noColor, noLogPrefix, timestamps     bool
	wait, watch                                                       bool
	build, noBuild, quietPull, yes                                    bool
	pull                                                              string
	waitTimeout                                                       int
	exitCodeFrom                                                      string
	scale                                                             []string
	attach, noAttach                                                  []string
	attachDependencies                                                bool
	timeout                                                           timeoutFlag
}

func newUpCommand(g *globals) *cobra.Command {
	f := &upFlags{}
	cmd := &cobra.Command{
		Use:   "up [OPTIONS] [SERVICE...]",
		Short: "Create and start containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUp(cmd, g, f, args)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.detach, "detach", "d", false, "Detached mode: Run containers in the background")
	fl.BoolVar(&f.noDeps, "no-deps", false, "Don't start linked services")
	fl.BoolVar(&f.forceRecreate, "force-recreate", false, "Recreate containers even if their configuration and image haven't changed")
	fl.BoolVar(&f.alwaysRecreateDeps, "always-recreate-deps", false, "Recreate dependent containers. Incompatible with --no-recreate.")
	fl.BoolVar(&f.noRecreate, "no-recreate", false, "If containers already exist, don't recreate them")
	fl.BoolVarP(&f.renewAnonVolumes, "renew-anon-volumes", "V", false, "Recreate anonymous volumes instead of retrieving data from the previous containers")
	fl.BoolVar(&f.noStart, "no-start", false, "Don't start the services after creating them")
	fl.BoolVar(&f.removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	fl.BoolVar(&f.abortOnExit, "abort-on-container-exit", false, "Stops all containers if any container was stopped")
	fl.BoolVar(&f.abortOnFailure, "abort-on-container-failure", false, "Stops all containers if any container exited with failure")
	fl.StringVar(&f.exitCodeFrom, "exit-code-from", "", "Return the exit code of the selected service container. Implies --abort-on-container-exit")
	fl.StringArrayVar(&f.scale, "scale", nil, "Scale SERVICE to NUM instances. Overrides the `scale` setting in the Compose file if present")
	fl.BoolVar(&f.wait, "wait", false, "Wait for services to be running|healthy. Implies detached mode")
	fl.IntVar(&f.waitTimeout, "wait-timeout", 0, "Maximum duration in seconds to wait for the project to be running|healthy")
	fl.BoolVar(&f.noColor, "no-color", false, "Produce monochrome output")
	fl.BoolVar(&f.noLogPrefix, "no-log-prefix", false, "Don't print prefix in logs")
	fl.BoolVar(&f.timestamps, "timestamps", false, "Show timestamps")
	fl.StringArrayVar(&f.attach, "attach", nil, "Restrict attaching to the specified services. Incompatible with --attach-dependencies.")
	fl.StringArrayVar(&f.noAttach, "no-attach", nil, "Do not attach (stream logs) to the specified services")
	fl.BoolVar(&f.attachDependencies, "attach-dependencies", false, "Automatically attach to log output of dependent services")
	fl.BoolVar(&f.quietPull, "quiet-pull", false, "Pull without printing progress information")
	fl.BoolVarP(&f.yes, "yes", "y", false, `Assume "yes" as answer to all prompts and run non-interactively`)
	fl.BoolVarP(&f.watch, "watch", "w", false, "Watch source code and rebuild/refresh containers when files are updated.")
	addTimeout(cmd, &f.timeout, "Use this timeout in seconds for container shutdown when attached or when containers are already running")
	addBuildFlags(cmd, f)
	return cmd
}

// addBuildFlags adds compose's --build and --no-build to up and create.
func addBuildFlags(cmd *cobra.Command, f *upFlags) {
	cmd.Flags().StringVar(&f.pull, "pull", "policy", `Pull image before running ("always"|"missing"|"never")`)
	cmd.Flags().BoolVar(&f.build, "build", false, "Build images before starting containers")
	cmd.Flags().BoolVar(&f.noBuild, "no-build", false, "Don't build an image, even if it's policy")
}

func runUp(cmd *cobra.Command, g *globals, f *upFlags, args []string) error {
	ctx := cmd.Context()
	if f.forceRecreate && f.noRecreate {
		return errors.New("--force-recreate and --no-recreate are incompatible")
	}
	if f.alwaysRecreateDeps && f.noRecreate {
		return errors.New("--always-recreate-deps and --no-recreate are incompatible")
	}
	if f.exitCodeFrom != "" {
		f.abortOnExit = true
	}
	if len(f.attach) > 0 && f.attachDependencies {
		return errors.New("--attach-dependencies and --attach are incompatible")
	}
	if f.detach && f.abortOnExit {
		return errors.New("--abort-on-container-exit and --detach are incompatible")
	}
	if f.wait {
		f.detach = true
	}
	if f.watch && f.detach {
		return errors.New("--detach and --watch can't be used together")
	}
	p, err := g.loadNamed(ctx, args)
	if err != nil {
		return err
	}
	var w *watcher
	if f.watch {
		// Checked before anything starts: a bad develop section is an
		// error of the command, not of the running stack.
		if w, err = newWatcher(cmd, g, p, args, &watchFlags{prune: true}); err != nil {
			return err
		}
	}
	scale, err := parseScale(f.scale)
	if err != nil {
		return err
	}
	asked := args
	if f.exitCodeFrom != "" {
		asked = append(append([]string{}, args...), f.exitCodeFrom)
	}
	if err := checkServices(p, asked); err != nil {
		return err
	}
	if f.build && f.noBuild {
		return errors.New("--build and --no-build are incompatible")
	}
	if err := applyPullFlag(p, f.pull); err != nil {
		return err
	}
	if err := buildForUp(cmd, g, p, asked, f); err != nil {
		return err
	}
	m, err := g.model(p)
	if err != nil {
		return err
	}
	c, err := supervisor.Connect(ctx, g.paths(), p.Name)
	if err != nil {
		return err
	}
	req := supervisor.UpRequest{
		Model: *m, Services: args, NoDeps: f.noDeps, ForceRecreate: f.forceRecreate,
		NoRecreate: f.noRecreate, AlwaysRecreateDeps: f.alwaysRecreateDeps, NoStart: f.noStart, RemoveOrphans: f.removeOrphans,
		Timeout: f.timeout.duration(), Scale: scale, RenewAnonVolumes: f.renewAnonVolumes,
		Parallel: g.parallel,
	}
	req.MaxReplicas, _ = model.MaxReplicas() // checked by Model
	if err := withSteps(cmd.ErrOrStderr(), func(progress func(supervisor.Event)) error {
		if f.quietPull {
			progress = withoutPulls(progress)
		}
		return c.Up(ctx, req, progress)
	}); err != nil {
		return err
	}
	if f.wait {
		return waitHealthy(ctx, cmd.ErrOrStderr(), c, f.waitTimeout)
	}
	if f.detach || f.noStart {
		return nil
	}
	attachTo, err := attachSelection(p, args, f)
	if err != nil {
		return err
	}
	if w != nil {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			if err := w.run(wctx); err != nil && wctx.Err() == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "Error: watch: %v\n", err)
			}
		}()
	}
	return attach(cmd, g, c, p.Name, attachTo, f)
}

// applyPullFlag is --pull: it overrides every service's pull_policy
// ("policy", the default, keeps them).
func applyPullFlag(p *project.Project, pull string) error {
	switch pull {
	case "", "policy":
		return nil
	case types.PullPolicyAlways, types.PullPolicyMissing, types.PullPolicyNever, types.PullPolicyBuild:
	default:
		return fmt.Errorf("invalid --pull option %q", pull)
	}
	for name, svc := range p.Services {
		if pull == types.PullPolicyBuild && svc.Build == nil {
			continue
		}
		svc.PullPolicy = pull
		p.Services[name] = svc
	}
	return nil
}

// withoutPulls drops the pull steps from the progress shown.
func withoutPulls(progress func(supervisor.Event)) func(supervisor.Event) {
	return func(e supervisor.Event) {
		if e.Action != "pull" {
			progress(e)
		}
	}
}

// waitHealthy waits until every container is running and, where it has a
// health check, healthy; a container that exits or turns unhealthy fails it.
// As compose, each container's line says Waiting, then Healthy (or Exited,
// for one that ended well).
func waitHealthy(ctx context.Context, w io.Writer, c *supervisor.Client, timeout int) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(timeout)*time.Second)
		defer cancel()
	}
	step := func(r supervisor.Record, action string) supervisor.Event {
		return supervisor.Event{Action: action, Container: r.Name, Service: r.Service, ID: r.ID}
	}
	err := withSteps(w, func(progress func(supervisor.Event)) error {
		recs, err := c.Ps(ctx)
		if err != nil {
			return err
		}
		for _, r := range recs {
			progress(step(r, "Waiting"))
		}
		if _, err := c.Wait(ctx, supervisor.WaitReady, nil); err != nil {
			return err
		}
		if recs, err = c.Ps(ctx); err != nil {
			return err
		}
		for _, r := range recs {
			if r.State.Status == supervisor.StatusExited {
				progress(step(r, "Exited"))
			} else {
				progress(step(r, "Healthy"))
			}
		}
		return nil
	})
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timeout waiting for the project to be running and healthy")
	}
	return err
}

// attach follows the logs of the project's containers until they have all
// exited, or until Ctrl-C, which stops them, as `docker compose up` does.
func attach(cmd *cobra.Command, g *globals, c *supervisor.Client, proj string, services []string, f *upFlags) error {
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	lf := &logsFlags{follow: true, noColor: f.noColor, noLogPrefix: f.noLogPrefix, timestamps: f.timestamps, tail: -1, rescan: f.watch}
	done := make(chan error, 1)
	exited := make(chan supervisor.Record, 64)
	printAttaching(cmd.OutOrStdout(), g, proj, services)
	go func() {
		done <- followLogs(ctx, cmd.OutOrStdout(), g, proj, services, lf, func(r supervisor.Record) {
			fmt.Fprint(cmd.OutOrStdout(), exitLine(r))
			select {
			case exited <- r:
			default:
			}
		})
	}()

	stopAll := func() error {
		fmt.Fprintln(cmd.ErrOrStderr(), "Gracefully stopping... (press Ctrl+C again to force)")
		return withSteps(cmd.ErrOrStderr(), func(progress func(supervisor.Event)) error {
			return c.Containers(context.Background(), "stop", supervisor.ContainersRequest{Timeout: f.timeout.duration()}, progress)
		})
	}
	exitCode := 0
	for {
		select {
		case <-sigs:
			go func() {
				<-sigs
				_ = c.Containers(context.Background(), "kill", supervisor.ContainersRequest{}, nil)
				os.Exit(130)
			}()
			if err := stopAll(); err != nil {
				return err
			}
			cancel()
			<-done
			return &exitError{code: 130}
		case r := <-exited:
			svc, code := r.Service, r.State.ExitCode
			if f.abortOnFailure && code != 0 || f.abortOnExit {
				if f.exitCodeFrom == "" || f.exitCodeFrom == svc {
					exitCode = code
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "Aborting on container exit...")
				if err := stopAll(); err != nil {
					return err
				}
				cancel()
				<-done
				if f.exitCodeFrom != "" && f.exitCodeFrom != svc {
					exitCode = lastExitCode(cmd.Context(), c, f.exitCodeFrom)
				}
				if exitCode != 0 {
					return &exitError{code: exitCode}
				}
				return nil
			}
		case err := <-done:
			return err
		}
	}
}

// lastExitCode is the exit code of the service's first replica.
func lastExitCode(ctx context.Context, c *supervisor.Client, service string) int {
	recs, err := c.Ps(ctx)
	if err != nil {
		return 1
	}
	for _, r := range recs {
		if r.Service == service {
			return r.State.ExitCode
		}
	}
	return 0
}
