package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/format"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/mattn/go-shellwords"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/project"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

type runFlags struct {
	detach, rm, noTTY, tty, interactive             bool
	noDeps, removeOrphans, servicePorts, useAliases bool
	quietPull, quiet, build, quietBuild             bool
	entrypoint, name, user, workdir, pull           string
	env, envFromFile, volumes, publish, labels      []string
	capAdd, capDrop                                 []string
}

func newRunCommand(g *globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] SERVICE [COMMAND] [ARGS...]",
		Short: "Run a one-off command on a service",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// compose's rule: a terminal when the output is one.
			if !cmd.Flags().Changed("no-TTY") {
				f.noTTY = !isTerminal(cmd.OutOrStdout())
			}
			if cmd.Flags().Changed("tty") {
				if cmd.Flags().Changed("no-TTY") {
					return errors.New("--tty and --no-TTY can't be used together")
				}
				f.noTTY = !f.tty
			}
			return runRun(cmd, g, f, args[0], args[1:])
		},
	}
	cmd.Flags().SetInterspersed(false)
	fl := cmd.Flags()
	fl.BoolVarP(&f.detach, "detach", "d", false, "Run container in background and print container ID")
	fl.BoolVar(&f.rm, "rm", false, "Automatically remove the container when it exits")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "Override the entrypoint of the image")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "Set environment variables")
	fl.StringArrayVar(&f.envFromFile, "env-from-file", nil, "Set environment variables from file")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "Add or override a label")
	fl.StringVar(&f.name, "name", "", "Assign a name to the container")
	fl.BoolVarP(&f.noTTY, "no-TTY", "T", false, "Disable pseudo-TTY allocation (default: auto-detected)")
	fl.BoolVarP(&f.tty, "tty", "t", true, "Allocate a pseudo-TTY")
	fl.BoolVarP(&f.interactive, "interactive", "i", true, "Keep STDIN open even if not attached")
	fl.StringVarP(&f.user, "user", "u", "", "Run as specified username or uid")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "Working directory inside the container")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "Bind mount a volume")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "Publish a container's port(s) to the host")
	fl.BoolVarP(&f.servicePorts, "service-ports", "P", false, "Run command with all service's ports enabled and mapped to the host")
	fl.BoolVar(&f.useAliases, "use-aliases", false, "Use the service's network useAliases in the network(s) the container connects to")
	fl.StringSliceVar(&f.capAdd, "cap-add", nil, "Add Linux capabilities")
	fl.StringSliceVar(&f.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	fl.BoolVar(&f.noDeps, "no-deps", false, "Don't start linked services")
	fl.BoolVar(&f.removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	fl.StringVar(&f.pull, "pull", "policy", `Pull image before running ("always"|"missing"|"never")`)
	fl.BoolVar(&f.quietPull, "quiet-pull", false, "Pull without printing progress information")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "Don't print anything to STDOUT")
	fl.BoolVar(&f.build, "build", false, "Build image before starting container")
	fl.BoolVar(&f.quietBuild, "quiet-build", false, "Suppress progress output from the build process")
	return cmd
}

func runRun(cmd *cobra.Command, g *globals, f *runFlags, service string, args []string) error {
	ctx := cmd.Context()
	switch f.pull {
	case "policy", "always", "missing", "never":
	default:
		return fmt.Errorf("invalid --pull option %q", f.pull)
	}
	p, err := g.loadNamed(ctx, []string{service})
	if err != nil {
		return err
	}
	if err := checkServices(p, []string{service}); err != nil {
		return err
	}
	if err := applyRunFlags(p, service, f, args); err != nil {
		return err
	}
	m, err := g.model(p)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	if f.quiet {
		stderr = io.Discard
	}
	if f.build {
		bf := &buildFlags{quiet: f.quietBuild || f.quiet}
		if err := buildServices(cmd, g, p, []string{service}, bf, func(types.ServiceConfig) bool { return true }); err != nil {
			return err
		}
	}
	if err := pullForRun(cmd, g, p, service, f, stderr); err != nil {
		return err
	}
	c, err := supervisor.Connect(ctx, g.paths(), p.Name)
	if err != nil {
		return err
	}

	// Dependencies are started as `up` would start them.
	if !f.noDeps {
		var deps []string
		for dep := range p.Services[service].DependsOn {
			if _, ok := p.Services[dep]; ok {
				deps = append(deps, dep)
			}
		}
		sort.Strings(deps)
		if len(deps) > 0 {
			req := supervisor.UpRequest{Model: *m, Services: deps, RemoveOrphans: f.removeOrphans, Parallel: g.parallel}
			if err := withSteps(stderr, func(progress func(supervisor.Event)) error {
				return c.Up(ctx, req, progress)
			}); err != nil {
				return err
			}
		}
	}

	useTTY := !f.noTTY && !f.detach
	if err := checkTTYInput(useTTY, f.interactive && !f.detach); err != nil {
		return err
	}
	req := supervisor.RunRequest{
		Model: *m, Service: service, Name: f.name, Detach: f.detach, Rm: f.rm,
		Tty: useTTY, Stdin: f.interactive && !f.detach, NoDeps: f.noDeps, UseAliases: f.useAliases,
		RemoveOrphans: f.removeOrphans,
	}
	var sio supervisor.ExecIO
	if req.Stdin {
		sio.Stdin = os.Stdin
	}
	sio.Stdout, sio.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
	if useTTY && term.IsTerminal(int(os.Stdin.Fd())) {
		t := openTerminal(int(os.Stdin.Fd()))
		defer t.restore()
		req.Rows, req.Cols = t.rows, t.cols
		sio.Resize = t.resize
	}
	if !useTTY && !f.detach {
		sio.Signals = proxySignals()
		defer signal.Reset(proxied...)
	}
	code, res, err := c.Run(ctx, req, sio)
	var ee *supervisor.ExecError
	if errors.As(err, &ee) {
		// The supervisor sends the code the runtime gave the failed start
		// (127 not found, 126 not executable).
		code := ee.Code
		if code <= 0 {
			code = 126
		}
		return &exitError{code: code, msg: ee.Msg}
	}
	if err != nil {
		return err
	}
	if res != nil {
		fmt.Fprintln(cmd.OutOrStdout(), res.Name)
		return nil
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// applyRunFlags writes run's overrides into the service, before the model
// is made from the project: they then go through the same conversion as
// the compose file's own settings.
func applyRunFlags(p *project.Project, service string, f *runFlags, args []string) error {
	s := p.Services[service]
	if len(args) > 0 {
		s.Command = types.ShellCommand(args)
	}
	if f.entrypoint != "" {
		ep, err := shellwords.Parse(f.entrypoint)
		if err != nil {
			return fmt.Errorf("--entrypoint: %w", err)
		}
		s.Entrypoint = types.ShellCommand(ep)
		if len(args) == 0 {
			s.Command = types.ShellCommand{}
		}
	}
	if len(f.envFromFile) > 0 || len(f.env) > 0 {
		env := types.MappingWithEquals{}
		for k, v := range s.Environment {
			env[k] = v
		}
		if len(f.envFromFile) > 0 {
			vars, err := dotenv.GetEnvFromFile(map[string]string{}, f.envFromFile)
			if err != nil {
				return err
			}
			for k, v := range vars {
				env[k] = &v
			}
		}
		for _, kv := range f.env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				val, found := os.LookupEnv(k)
				if !found {
					delete(env, k)
					continue
				}
				v = val
			}
			env[k] = &v
		}
		s.Environment = env
	}
	if len(f.labels) > 0 {
		labels := types.Labels{}
		for k, v := range s.Labels {
			labels[k] = v
		}
		for _, kv := range f.labels {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = v
		}
		s.Labels = labels
	}
	if f.user != "" {
		s.User = f.user
	}
	if f.workdir != "" {
		s.WorkingDir = f.workdir
	}
	s.CapAdd = append(append([]string{}, s.CapAdd...), f.capAdd...)
	s.CapDrop = append(append([]string{}, s.CapDrop...), f.capDrop...)
	if f.pull != "policy" {
		s.PullPolicy = f.pull
	}
	for _, v := range f.volumes {
		vol, err := format.ParseVolume(v)
		if err != nil {
			return fmt.Errorf("invalid volume %q: %w", v, err)
		}
		if vol.Type == types.VolumeTypeBind && !filepath.IsAbs(vol.Source) {
			vol.Source = filepath.Join(p.WorkingDir, vol.Source)
		}
		if vol.Type == types.VolumeTypeBind && vol.Bind == nil {
			vol.Bind = &types.ServiceVolumeBind{CreateHostPath: true}
		}
		s.Volumes = append(append([]types.ServiceVolumeConfig{}, s.Volumes...), vol)
	}
	// Ports are not published unless -P (the service's) or -p (these).
	if !f.servicePorts {
		s.Ports = nil
	}
	for _, spec := range f.publish {
		ports, err := types.ParsePortConfig(spec)
		if err != nil {
			return fmt.Errorf("invalid port %q: %w", spec, err)
		}
		s.Ports = append(append([]types.ServicePortConfig{}, s.Ports...), ports...)
	}
	p.Services[service] = s
	return nil
}

// checkTTYInput refuses a terminal fed from input that is not one, as
// docker does: the keys typed would not reach the terminal's line
// discipline, and the input would be echoed back mangled.
func checkTTYInput(tty, interactive bool) error {
	if tty && interactive && !term.IsTerminal(int(os.Stdin.Fd())) {
		return errors.New("the input device is not a TTY")
	}
	return nil
}

// terminal is the CLI's terminal in raw mode, its size followed.
type terminal struct {
	rows, cols uint16
	resize     chan runtime.WinSize
	restore    func()
}

func openTerminal(fd int) *terminal {
	t := &terminal{resize: make(chan runtime.WinSize, 1), restore: func() {}}
	if w, h, err := term.GetSize(fd); err == nil {
		t.cols, t.rows = uint16(w), uint16(h)
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	go func() {
		for range winch {
			if w, h, err := term.GetSize(fd); err == nil {
				select {
				case t.resize <- runtime.WinSize{Rows: uint16(h), Cols: uint16(w)}:
				default: // the next SIGWINCH brings the newer size
				}
			}
		}
	}()
	st, err := term.MakeRaw(fd)
	t.restore = func() {
		signal.Stop(winch)
		if err == nil {
			_ = term.Restore(fd, st)
		}
	}
	return t
}

// proxied are the signals the CLI hands to the process (sig-proxy).
var proxied = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2}

func proxySignals() <-chan syscall.Signal {
	in := make(chan os.Signal, 4)
	out := make(chan syscall.Signal, 4)
	signal.Notify(in, proxied...)
	go func() {
		for s := range in {
			if sig, ok := s.(syscall.Signal); ok {
				out <- sig
			}
		}
	}()
	return out
}

// pullForRun pulls the one-off's image when the store lacks it (or its
// pull policy says always), showing progress unless --quiet-pull: the
// supervisor would pull it too, but with no one to tell.
func pullForRun(cmd *cobra.Command, g *globals, p *project.Project, service string, f *runFlags, stderr io.Writer) error {
	svc := p.Services[service]
	if svc.Image == "" || svc.PullPolicy == "never" {
		return nil
	}
	s, err := g.openImageStore()
	if err != nil {
		return err
	}
	if img, err := s.Image(svc.Image); err == nil {
		due, err := model.PullDue(svc.PullPolicy, true, img.LastPulled(), time.Now())
		if err != nil || !due {
			return err
		}
	} else if !errors.Is(err, image.ErrNotFound) {
		return err
	}
	if !f.quietPull {
		fmt.Fprintf(stderr, " %s Pulling\n", service)
	}
	if _, err := s.Pull(cmd.Context(), svc.Image, image.PullOptions{InsecureRegistries: insecureRegistryList(nil)}); err != nil {
		return fmt.Errorf("service %q: %w", service, imageErr(err))
	}
	if !f.quietPull {
		fmt.Fprintf(stderr, " %s Pulled\n", service)
	}
	return nil
}
