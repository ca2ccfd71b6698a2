package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

type attachFlags struct {
	detachKeys       string
	noStdin, sigProx bool
	index            int
}

func newAttachCommand(g *globals) *cobra.Command {
	f := &attachFlags{}
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] SERVICE",
		Short: "Attach local standard input, output, and error streams to a service's running container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAttach(cmd, g, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.detachKeys, "detach-keys", "", "Override the key sequence for detaching from a container.")
	fl.BoolVar(&f.noStdin, "no-stdin", false, "Do not attach STDIN")
	fl.BoolVar(&f.sigProx, "sig-proxy", true, "Proxy all received signals to the process")
	fl.IntVar(&f.index, "index", 0, "index of the container if service has multiple replicas.")
	return cmd
}

func runAttach(cmd *cobra.Command, g *globals, f *attachFlags, service string) error {
	ctx := cmd.Context()
	if _, err := supervisor.ParseDetachKeys(f.detachKeys); err != nil {
		return err
	}
	recs, client, err := g.serviceRecords(ctx, service)
	if err != nil {
		return err
	}
	index := max(f.index, 1)
	var rec *supervisor.Record
	for i := range recs {
		if recs[i].Service == service && recs[i].Number == index && recs[i].Labels[model.LabelOneoff] != "True" {
			rec = &recs[i]
		}
	}
	if rec == nil {
		return fmt.Errorf("service %q is not running container #%d", service, index)
	}
	keys := f.detachKeys
	if keys == "" {
		keys = "ctrl-p,ctrl-q" // docker's default
	}
	req := supervisor.AttachRequest{Container: rec.ID, Stdin: !f.noStdin, DetachKeys: keys}
	sio := supervisor.ExecIO{Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
	if req.Stdin {
		sio.Stdin = os.Stdin
	}
	tty := rec.Config.Tty && term.IsTerminal(int(os.Stdin.Fd()))
	if tty {
		t := openTerminal(int(os.Stdin.Fd()))
		defer t.restore()
		req.Rows, req.Cols = t.rows, t.cols
		sio.Resize = t.resize
	} else if f.sigProx {
		sio.Signals = proxySignals()
		defer signal.Reset(proxied...)
	}
	code, err := client.Attach(ctx, req, sio)
	if errors.Is(err, supervisor.ErrDetached) {
		return nil
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}
