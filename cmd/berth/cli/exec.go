package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthrun/berth/engine/runtime"
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
			return runExec(cmd, g, f, args[0], args[1:])
		},
	}
	cmd.Flags().SetInterspersed(false)
	fl := cmd.Flags()
	fl.BoolVarP(&f.detach, "detach", "d", false, "Detached mode: Run command in the background")
	fl.BoolVarP(&f.noTTY, "no-tty", "T", !term.IsTerminal(int(os.Stdout.Fd())), "Disable pseudo-TTY allocation. By default `berth exec` allocates a TTY.")
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
	proj, p, err := g.projectName(ctx)
	if err != nil {
		return err
	}
	if err := checkServices(p, []string{service}); err != nil {
		return err
	}
	recs, _, err := g.records(ctx, proj)
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
		if r.Service == service && r.Number == index {
			rec = r
		}
	}
	if rec == nil {
		return fmt.Errorf("service %q is not running", service)
	}
	if rec.State.Status != supervisor.StatusRunning {
		return fmt.Errorf("container %s is not running", rec.Name)
	}
	ctr, err := runtime.Load(g.paths().RuntimeRoot(), rec.ID)
	if err != nil {
		return fmt.Errorf("container %s: %w", rec.Name, err)
	}
	spec := runtime.ExecSpec{Args: args, Env: f.env, Cwd: f.workdir}
	if f.user != "" {
		u, err := runtime.ResolveUser(rec.Spec.Rootfs, f.user, nil)
		if err != nil {
			return fmt.Errorf("user %q: %w", f.user, err)
		}
		spec.User = &u
	}
	// -d, as docker compose: start it and return; it runs on in the container.
	spec.Detach = f.detach
	useTTY := f.tty && !f.noTTY && !f.detach && term.IsTerminal(int(os.Stdin.Fd()))
	spec.Tty = useTTY
	if f.interactive && !f.detach {
		spec.Stdin = os.Stdin
	}
	if !f.detach {
		spec.Stdout, spec.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
	}
	if useTTY {
		if st, err := term.MakeRaw(int(os.Stdin.Fd())); err == nil {
			defer term.Restore(int(os.Stdin.Fd()), st)
		}
	}
	code, err := ctr.Exec(ctx, spec)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file") {
			return &exitError{code: 127, msg: fmt.Sprintf("OCI runtime exec failed: %s", msg)}
		}
		return &exitError{code: 126, msg: fmt.Sprintf("OCI runtime exec failed: %s", msg)}
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}
