package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/volmgr"
)

// newVolumeCommand is `berth volume`: docker's volume commands over berth's
// own volumes ($BERTH_ROOT/volumes).
func newVolumeCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "volume",
		Short: "Manage volumes",
		// Runnable, so that an unknown subcommand is an error, not help.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		newVolumeLsCommand(g),
		newVolumeCreateCommand(g),
		newVolumeInspectCommand(g),
		newVolumeRmCommand(g),
		newVolumePruneCommand(g),
	)
	return cmd
}

func volumeManager(g *globals) (*volmgr.Manager, error) {
	return volmgr.New(filepath.Join(g.root, "volumes"))
}

type volumeLsFlags struct {
	quiet   bool
	format  string
	filters []string
}

func newVolumeLsCommand(g *globals) *cobra.Command {
	f := &volumeLsFlags{}
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := volumeManager(g)
			if err != nil {
				return err
			}
			filters, err := volmgr.ParseFilters(f.filters)
			if err != nil {
				return err
			}
			vols, err := m.List(filters)
			if err != nil {
				return fmt.Errorf("list volumes: %w", err)
			}
			return printVolumeList(cmd.OutOrStdout(), vols, f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "Only display volume names")
	fl.StringVar(&f.format, "format", "", "Format output: table, json, or a Go template")
	fl.StringArrayVarP(&f.filters, "filter", "f", nil, `Filter output ("dangling=true", "label=key[=value]", "name=...", "driver=local")`)
	return cmd
}

// volumeRow is a volume as `volume ls --format` sees it.
type volumeRow struct {
	Name       string
	Driver     string
	Scope      string
	Mountpoint string
	Labels     string
	CreatedAt  string
	labels     map[string]string
}

// Label returns one label's value ({{.Label "key"}}).
func (r volumeRow) Label(key string) string { return r.labels[key] }

func newVolumeRow(v *volmgr.Volume) volumeRow {
	keys := slices.Sorted(maps.Keys(v.Labels))
	pairs := make([]string, 0, len(keys))
	for _, k := range keys {
		pairs = append(pairs, k+"="+v.Labels[k])
	}
	return volumeRow{
		Name: v.Name, Driver: v.Driver, Scope: v.Scope, Mountpoint: v.Mountpoint,
		Labels: strings.Join(pairs, ","), CreatedAt: v.CreatedAt.Format(time.RFC3339),
		labels: v.Labels,
	}
}

func printVolumeList(out io.Writer, vols []*volmgr.Volume, f *volumeLsFlags) error {
	switch format := strings.TrimSpace(f.format); {
	case f.quiet:
		for _, v := range vols {
			fmt.Fprintln(out, v.Name)
		}
		return nil
	case format == "" || format == "table":
		w := tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
		fmt.Fprintln(w, "DRIVER\tVOLUME NAME")
		for _, v := range vols {
			fmt.Fprintf(w, "%s\t%s\n", v.Driver, v.Name)
		}
		return w.Flush()
	case format == "json":
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		for _, v := range vols {
			if err := enc.Encode(newVolumeRow(v)); err != nil {
				return err
			}
		}
		return nil
	default:
		format = strings.TrimPrefix(format, "table ")
		tmpl, err := parseFormat(format)
		if err != nil {
			return fmt.Errorf("invalid --format: %w", err)
		}
		w := tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
		for _, v := range vols {
			if err := tmpl.Execute(w, newVolumeRow(v)); err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			fmt.Fprintln(w)
		}
		return w.Flush()
	}
}

type volumeCreateFlags struct {
	driver string
	name   string
	labels []string
	opts   []string
}

func newVolumeCreateCommand(g *globals) *cobra.Command {
	f := &volumeCreateFlags{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := f.name
			if len(args) == 1 {
				if name != "" && name != args[0] {
					return errors.New("conflicting options: either specify --name or provide positional arg, not both")
				}
				name = args[0]
			}
			labels, err := volumeKeyValues(f.labels, false)
			if err != nil {
				return fmt.Errorf("invalid --label: %w", err)
			}
			opts, err := volumeKeyValues(f.opts, true)
			if err != nil {
				return fmt.Errorf("invalid --opt: %w", err)
			}
			m, err := volumeManager(g)
			if err != nil {
				return err
			}
			v, err := m.Create(volmgr.VolumeSpec{Name: name, Driver: f.driver, Labels: labels, DriverOpts: opts})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), v.Name)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.driver, "driver", "d", volmgr.DriverLocal, "Specify volume driver name")
	fl.StringVar(&f.name, "name", "", "Specify volume name")
	fl.StringArrayVar(&f.labels, "label", nil, "Set metadata for a volume (key=value)")
	fl.StringArrayVarP(&f.opts, "opt", "o", nil, "Set driver specific options (type=tmpfs, o=size=64m, device=...)")
	return cmd
}

// volumeKeyValues parses "k=v" arguments; without needValue a bare "k" means "k=".
func volumeKeyValues(args []string, needValue bool) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if k == "" || (needValue && !ok) {
			return nil, fmt.Errorf("%q: expected key=value", a)
		}
		out[k] = v
	}
	return out, nil
}

// dockerVolume is `docker volume inspect`'s shape.
type dockerVolume struct {
	CreatedAt  string
	Driver     string
	Labels     map[string]string
	Mountpoint string
	Name       string
	Options    map[string]string
	Scope      string
}

func newVolumeInspectCommand(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := volumeManager(g)
			if err != nil {
				return err
			}
			var found []dockerVolume
			var errs []string
			for _, name := range args {
				v, err := m.Inspect(name)
				if err != nil {
					errs = append(errs, err.Error())
					continue
				}
				found = append(found, dockerVolume{
					CreatedAt: v.CreatedAt.Format(time.RFC3339), Driver: v.Driver, Labels: v.Labels,
					Mountpoint: v.Mountpoint, Name: v.Name, Options: v.DriverOpts, Scope: v.Scope,
				})
			}
			if err := printInspect(cmd.OutOrStdout(), found, format); err != nil {
				return err
			}
			if len(errs) > 0 {
				return errors.New(strings.Join(errs, "; "))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	return cmd
}

func printInspect(out io.Writer, vols []dockerVolume, format string) error {
	if format == "" || format == "json" {
		if vols == nil {
			vols = []dockerVolume{}
		}
		b, err := json.MarshalIndent(vols, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	tmpl, err := parseFormat(format)
	if err != nil {
		return fmt.Errorf("invalid --format: %w", err)
	}
	for _, v := range vols {
		if err := tmpl.Execute(out, v); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(out)
	}
	return nil
}

func newVolumeRmCommand(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Long:    "Remove one or more volumes. A volume in use by a container cannot be removed.",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := volumeManager(g)
			if err != nil {
				return err
			}
			var errs []string
			for _, name := range args {
				if err := m.Remove(name, force); err != nil {
					errs = append(errs, err.Error())
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			if len(errs) > 0 {
				// Docker's prefix, which users and scripts know.
				return &exitError{code: 1, msg: "Error response: " + strings.Join(errs, "; ")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not fail on volumes that do not exist")
	return cmd
}

type volumePruneFlags struct {
	all     bool
	force   bool
	filters []string
}

func newVolumePruneCommand(g *globals) *cobra.Command {
	f := &volumePruneFlags{}
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Long: "Remove volumes that no container uses. Without --all, only anonymous volumes\n" +
			"are removed, as docker does since Docker 23.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := volmgr.ParseFilters(f.filters)
			if err != nil {
				return err
			}
			if len(filters.Names) > 0 || filters.Driver != "" || filters.Dangling != nil {
				return errors.New("invalid filter: volume prune accepts label, label! and all")
			}
			all := f.all || filters.All
			if !f.force {
				what := "anonymous local volumes"
				if all {
					what = "all local volumes"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "WARNING! This will remove %s not used by at least one container.\nAre you sure you want to continue? [y/N] ", what)
				if !confirmed(cmd.InOrStdin()) {
					return nil
				}
			}
			m, err := volumeManager(g)
			if err != nil {
				return err
			}
			removed, size, err := m.Prune(volmgr.PruneOptions{All: all, Filters: filters})
			out := cmd.OutOrStdout()
			if len(removed) > 0 {
				fmt.Fprintln(out, "Deleted Volumes:")
				for _, n := range removed {
					fmt.Fprintln(out, n)
				}
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "Total reclaimed space: %s\n", units.HumanSize(float64(size)))
			return err
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	fl.BoolVarP(&f.force, "force", "f", false, "Do not prompt for confirmation")
	fl.StringArrayVar(&f.filters, "filter", nil, `Provide filter values (e.g. "label=<label>")`)
	return cmd
}
