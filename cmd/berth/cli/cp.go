package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/internal/tarcp"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

type cpFlags struct {
	all, archive, follow bool
	index                int
}

func newCpCommand(g *globals) *cobra.Command {
	f := &cpFlags{}
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] SERVICE:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- SERVICE:DEST_PATH",
		Short: "Copy files/folders between a service container and the local filesystem",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCp(cmd, g, f, args[0], args[1])
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.all, "all", false, "Include containers created by the run command")
	fl.BoolVarP(&f.archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	fl.BoolVarP(&f.follow, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	fl.IntVar(&f.index, "index", 0, "Index of the container if service has multiple replicas")
	return cmd
}

// splitCpArg reads SERVICE:PATH; a path with no colon, or one that starts
// with / or . before it, is local.
func splitCpArg(arg string) (service, p string) {
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	svc, p, ok := strings.Cut(arg, ":")
	if !ok {
		return "", arg
	}
	return svc, p
}

func runCp(cmd *cobra.Command, g *globals, f *cpFlags, src, dest string) error {
	ctx := cmd.Context()
	srcSvc, srcPath := splitCpArg(src)
	destSvc, destPath := splitCpArg(dest)
	switch {
	case srcSvc != "" && destSvc != "":
		return errors.New("copying between services is not supported")
	case srcSvc == "" && destSvc == "":
		return errors.New("must specify at least one container source")
	}
	service := srcSvc + destSvc
	recs, client, err := g.serviceRecords(ctx, service)
	if err != nil {
		return err
	}
	var targets []supervisor.Record
	for _, r := range recs {
		if r.Service != service || (f.index > 0 && r.Number != f.index) {
			continue
		}
		if r.Labels[model.LabelOneoff] == "True" && !f.all {
			continue
		}
		targets = append(targets, r)
	}
	if len(targets) == 0 {
		if f.index > 0 {
			return fmt.Errorf("service %q is not running container #%d", service, f.index)
		}
		return fmt.Errorf("no container found for service %q", service)
	}
	if srcSvc != "" {
		return copyFrom(ctx, cmd.OutOrStdout(), client, targets[0], srcPath, destPath, f)
	}
	for _, r := range targets {
		if err := copyTo(ctx, client, r, srcPath, destPath, f); err != nil {
			return err
		}
	}
	return nil
}

// contents tells whether a source path names a directory's contents
// (ends with /.), as docker cp reads it.
func contents(p string) bool {
	return strings.HasSuffix(p, "/.") || p == "."
}

func copyFrom(ctx context.Context, stdout io.Writer, c *supervisor.Client, r supervisor.Record, src, dest string, f *cpFlags) error {
	rc, err := c.CopyFrom(ctx, r.ID, src, f.follow)
	if err != nil {
		return err
	}
	defer rc.Close()
	if dest == "-" {
		_, err := io.Copy(stdout, rc)
		return err
	}
	root := path.Base(path.Clean("/" + src))
	if root == "/" {
		root = "."
	}
	opts := tarcp.Options{KeepOwner: f.archive, Uid: os.Getuid(), Gid: os.Getgid()}
	dir := dest
	fi, err := os.Stat(dest)
	switch {
	case err == nil && fi.IsDir():
		if contents(src) {
			opts.From, opts.To = root, ""
		}
	case err == nil || errors.Is(err, os.ErrNotExist):
		if strings.HasSuffix(dest, "/") && err != nil {
			return fmt.Errorf("destination directory %q does not exist", dest)
		}
		dir = filepath.Dir(dest)
		opts.From, opts.To = root, filepath.Base(dest)
	default:
		return err
	}
	return tarcp.Extract(rc, dir, opts)
}

func copyTo(ctx context.Context, c *supervisor.Client, r supervisor.Record, src, dest string, f *cpFlags) error {
	if src == "-" {
		return c.CopyTo(ctx, r.ID, dest, "", "", f.archive, os.Stdin)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	st, err := c.CopyStat(ctx, r.ID, dest)
	if err != nil {
		return err
	}
	// The archive's root is named for where it lands.
	dir, root := dest, filepath.Base(src)
	switch {
	case st.Exists && st.Dir:
		if contents(src) {
			root = "."
		}
	case st.Exists && fi.IsDir():
		return fmt.Errorf("cannot copy a directory to a file: %s", dest)
	default:
		if strings.HasSuffix(dest, "/") && !st.Exists {
			return fmt.Errorf("destination directory %q does not exist", dest)
		}
		dir, root = path.Dir(path.Clean("/"+dest)), path.Base(path.Clean("/"+dest))
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarcp.Write(pw, src, root, f.follow)) }()
	defer pr.Close()
	if err := c.CopyTo(ctx, r.ID, dir, "", "", f.archive, pr); err != nil {
		return fmt.Errorf("copying to %s: %w", r.Name, err)
	}
	return nil
}
