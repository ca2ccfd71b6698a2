package cli

import (
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

type execFlags struct {
	detach, noTTY, interactive, privileged bool
	tty                                    bool
	user, workdir                          string
	env                                    []string
	index                                  int
}

func newExecCommand(g *globals) *cobra.Command {
	f := &execFlags{}
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] SERVICE COMMAND [ARGS...]",
		Short: "Execute a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A switch in the help, as compose shows it; without it the
			// TTY follows whether stdout is a terminal.
			if !cmd.Flags().Changed("no-TTY") {
				f.noTTY = !term.IsTerminal(int(os.Stdout.Fd()))
			}
			return runExec(cmd, g, f, args[0], args[1:])
		},
	}
	cmd.Flags().SetInterspersed(false)
	// --no-tty was berth's spelling before compose's --no-TTY.
	cmd.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "no-tty" {
			name = "no-TTY"
		}
		return pflag.NormalizedName(name)
	})
	fl := cmd.Flags()
	fl.BoolVarP(&f.detach, "detach", "d", false, "Detached mode: Run command in the background")
	fl.BoolVarP(&f.noTTY, "no-TTY", "T", false, "Disable pseudo-TTY allocation. By default 'berth exec' allocates a TTY.")
	fl.BoolVarP(&f.tty, "tty", "t", true, "Allocate a pseudo-TTY (the default when stdout is a terminal)")
	fl.BoolVarP(&f.interactive, "interactive", "i", true, "Keep STDIN open even if not attached")
	fl.BoolVar(&f.privileged, "privileged", false, "Give extended privileges to the process")
	fl.StringVarP(&f.user, "user", "u", "", "Run the command as this user")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "Path to workdir directory for this command")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "Set environment variables")
	fl.IntVar(&f.index, "index", 0, "Index of the container if service has multiple replicas")
	return cmd
}

func runExec(cmd *cobra.Command, g *globals, f *execFlags, service string, args []string) error {
	ctx := cmd.Context()
	recs, client, err := g.serviceRecords(ctx, service)
	if err != nil {
		return err
	}
	index := f.index
	if index == 0 {
		index = 1
	}
	var rec *supervisor.Record
	for i := range recs {
		r := &recs[i]
		// run's one-off containers are never exec's, as in compose.
		if r.Service == service && r.Number == index && r.Labels[model.LabelOneoff] != "True" {
			rec = r
		}
	}
	if rec == nil {
		return fmt.Errorf("service %q is not running", service)
	}
	switch rec.State.Status {
	case supervisor.StatusRunning:
	case supervisor.StatusPaused:
		return fmt.Errorf("container %s is paused, unpause the container before exec", rec.Name)
	default:
		return fmt.Errorf("container %s is not running", rec.Name)
	}
	// The supervisor runs the command and relays its stdio: the
	// container never gets this process's descriptors.
	// -d, as docker compose: the command starts and exec returns; it runs
	// on in the container.
	req := supervisor.ExecRequest{Container: rec.ID, Args: args, Env: f.env, Workdir: f.workdir, User: f.user, Detach: f.detach}
	var sio supervisor.ExecIO
	// compose's rule: a terminal when the output is one (-T aside); input
	// that is not a terminal cannot feed one.
	useTTY := f.tty && !f.noTTY && !f.detach
	if err := checkTTYInput(useTTY, f.interactive && !f.detach); err != nil {
		return err
	}
	req.Tty = useTTY
	if f.interactive && !f.detach {
		req.Stdin = true
		sio.Stdin = os.Stdin
	}
	if !f.detach {
		sio.Stdout, sio.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
	}
	if useTTY {
		fd := int(os.Stdin.Fd())
		if w, h, err := term.GetSize(fd); err == nil {
			req.Cols, req.Rows = uint16(w), uint16(h)
		}
		resize := make(chan runtime.WinSize, 1)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if w, h, err := term.GetSize(fd); err == nil {
					select {
					case resize <- runtime.WinSize{Rows: uint16(h), Cols: uint16(w)}:
					default: // the next SIGWINCH brings the newer size
					}
				}
			}
		}()
		sio.Resize = resize
		if st, err := term.MakeRaw(fd); err == nil {
			defer term.Restore(fd, st)
		}
	}
	code, err := client.Exec(ctx, req, sio)
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}
