package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/netmgr"
	"github.com/berthrun/berth/supervisor"
)

// newNetworkCommand is `berth network`: docker's network commands over
// netmgr's state ($BERTH_RUN_ROOT/networks), the compose projects' networks
// and the user's own alike.
func newNetworkCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage networks",
		// Runnable, so that an unknown subcommand is an error, not help.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		newNetworkLsCommand(g),
		newNetworkInspectCommand(g),
		newNetworkCreateCommand(g),
		newNetworkRmCommand(g),
		newNetworkPruneCommand(g),
	)
	return cmd
}

func networkManager(g *globals) (*netmgr.Manager, error) {
	return netmgr.New(g.paths().NetworkDir())
}

// containerNames maps container IDs to their names, from the containers'
// records; an ID without a record stands for itself.
func containerNames(p supervisor.Paths, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id
		if r, err := supervisor.LoadRecord(p, id); err == nil && r.Name != "" {
			out[i] = r.Name
		}
	}
	return out
}

// --- ls ---------------------------------------------------------------------

type networkLsFlags struct {
	quiet   bool
	noTrunc bool
	format  string
	filters []string
}

func newNetworkLsCommand(g *globals) *cobra.Command {
	f := &networkLsFlags{}
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := netmgr.ParseFilters(f.filters)
			if err != nil {
				return err
			}
			m, err := networkManager(g)
			if err != nil {
				return err
			}
			all, err := m.Networks()
			if err != nil {
				return fmt.Errorf("list networks: %w", err)
			}
			var rows []networkRow
			for _, n := range all {
				if filter.Match(n) {
					rows = append(rows, newNetworkRow(n, f.noTrunc))
				}
			}
			return printNetworkList(cmd.OutOrStdout(), rows, f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "Only display network IDs")
	fl.BoolVar(&f.noTrunc, "no-trunc", false, "Do not truncate the output")
	fl.StringVar(&f.format, "format", "", "Format output: table, json, or a Go template")
	fl.StringArrayVarP(&f.filters, "filter", "f", nil, `Provide filter values (e.g. "label=key[=value]", "name=...", "id=...", "driver=bridge")`)
	return cmd
}

// networkRow is a network as `network ls --format` sees it.
type networkRow struct {
	ID        string
	Name      string
	Driver    string
	Scope     string
	IPv4      string
	IPv6      string
	Internal  string
	Labels    string
	CreatedAt string
	labels    map[string]string
}

// Label returns one label's value ({{.Label "key"}}).
func (r networkRow) Label(key string) string { return r.labels[key] }

func newNetworkRow(n netmgr.Network, noTrunc bool) networkRow {
	id := n.ID
	if !noTrunc && len(id) > 12 {
		id = id[:12]
	}
	keys := slices.Sorted(maps.Keys(n.Labels))
	pairs := make([]string, 0, len(keys))
	for _, k := range keys {
		pairs = append(pairs, k+"="+n.Labels[k])
	}
	return networkRow{
		ID: id, Name: n.Name, Driver: netmgr.Driver, Scope: netmgr.Scope,
		IPv4: "true", IPv6: "false", Internal: fmt.Sprint(n.Internal),
		Labels:    strings.Join(pairs, ","),
		CreatedAt: n.Created.Local().Format("2006-01-02 15:04:05.999999999 -0700 MST"),
		labels:    n.Labels,
	}
}

func printNetworkList(out io.Writer, rows []networkRow, f *networkLsFlags) error {
	switch format := strings.TrimSpace(f.format); {
	case f.quiet:
		for _, r := range rows {
			fmt.Fprintln(out, r.ID)
		}
		return nil
	case format == "" || format == "table":
		w := tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
		fmt.Fprintln(w, "NETWORK ID\tNAME\tDRIVER\tSCOPE")
		for _, r := range rows {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.ID, r.Name, r.Driver, r.Scope)
		}
		return w.Flush()
	case format == "json":
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	default:
		return imageTemplateLines(out, strings.TrimPrefix(format, "table "), rows)
	}
}

// --- inspect ----------------------------------------------------------------

// dockerNetwork is `docker network inspect`'s shape.
type dockerNetwork struct {
	Name       string
	ID         string `json:"Id"`
	Created    time.Time
	Scope      string
	Driver     string
	EnableIPv4 bool
	EnableIPv6 bool
	IPAM       dockerIPAM
	Internal   bool
	Attachable bool
	Ingress    bool
	ConfigFrom struct{ Network string }
	ConfigOnly bool
	Containers map[string]dockerEndpoint
	Options    map[string]string
	Labels     map[string]string
}

type dockerIPAM struct {
	Driver  string
	Options map[string]string
	Config  []dockerIPAMConfig
}

type dockerIPAMConfig struct {
	Subnet  string
	IPRange string `json:",omitempty"`
	Gateway string
}

type dockerEndpoint struct {
	Name        string
	EndpointID  string
	MacAddress  string
	IPv4Address string
	IPv6Address string
}

// bridgeNameOption is where docker reports a bridge's kernel name.
const bridgeNameOption = "com.docker.network.bridge.name"

func newDockerNetwork(p supervisor.Paths, n netmgr.Network) dockerNetwork {
	cfg := dockerIPAMConfig{Subnet: n.Subnet.String(), Gateway: n.Gateway.String()}
	if n.IPRange.IsValid() {
		cfg.IPRange = n.IPRange.String()
	}
	d := dockerNetwork{
		Name: n.Name, ID: n.ID, Created: n.Created, Scope: netmgr.Scope, Driver: netmgr.Driver,
		EnableIPv4: true,
		IPAM:       dockerIPAM{Driver: "default", Options: map[string]string{}, Config: []dockerIPAMConfig{cfg}},
		Internal:   n.Internal,
		Containers: map[string]dockerEndpoint{},
		Options:    map[string]string{bridgeNameOption: n.Bridge},
		Labels:     n.Labels,
	}
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	ids := make([]string, len(n.Endpoints))
	for i, ep := range n.Endpoints {
		ids[i] = ep.ContainerID
	}
	names := containerNames(p, ids)
	for i, ep := range n.Endpoints {
		d.Containers[ep.ContainerID] = dockerEndpoint{
			Name: names[i], EndpointID: ep.HostIfName, MacAddress: ep.MAC,
			IPv4Address: ep.Address.String(),
		}
	}
	return d
}

func newNetworkInspectCommand(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := networkManager(g)
			if err != nil {
				return err
			}
			found := []dockerNetwork{}
			var errs []string
			for _, ref := range args {
				n, err := m.Find(ref)
				if errors.Is(err, netmgr.ErrNotFound) {
					errs = append(errs, "No such network: "+ref)
					continue
				}
				if err != nil {
					errs = append(errs, err.Error())
					continue
				}
				found = append(found, newDockerNetwork(g.paths(), n))
			}
			if err := printNetworkInspect(cmd.OutOrStdout(), found, format); err != nil {
				return err
			}
			if len(errs) > 0 {
				return &exitError{code: 1, msg: "Error: " + strings.Join(errs, "; ")}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	return cmd
}

func printNetworkInspect(out io.Writer, nets []dockerNetwork, format string) error {
	if format == "" || format == "json" {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "    ")
		if err := enc.Encode(nets); err != nil {
			return err
		}
		_, err := io.WriteString(out, b.String())
		return err
	}
	return imageTemplateLines(out, format, nets)
}

// --- create -----------------------------------------------------------------

type networkCreateFlags struct {
	driver   string
	subnet   string
	gateway  string
	ipRange  string
	internal bool
	labels   []string
}

func newNetworkCreateCommand(g *globals) *cobra.Command {
	f := &networkCreateFlags{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Long: "Create a bridge network that compose projects can join as an external network.\n" +
			"It stays until `berth network rm` or `berth network prune`.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := f.spec(args[0])
			if err != nil {
				return err
			}
			m, err := networkManager(g)
			if err != nil {
				return err
			}
			// EnsureNetwork would adopt an existing network; create must not.
			if _, err := m.Network(spec.Name); err == nil {
				return fmt.Errorf("network with name %s already exists", spec.Name)
			} else if !errors.Is(err, netmgr.ErrNotFound) {
				return fmt.Errorf("create network %s: %w", spec.Name, err)
			}
			n, err := m.EnsureNetwork(cmd.Context(), spec)
			if err != nil {
				return fmt.Errorf("create network %s: %w", spec.Name, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), n.ID)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.driver, "driver", "d", netmgr.Driver, "Driver to manage the Network (berth has bridge only)")
	fl.StringVar(&f.subnet, "subnet", "", "Subnet in CIDR format that represents a network segment")
	fl.StringVar(&f.gateway, "gateway", "", "IPv4 Gateway for the master subnet")
	fl.StringVar(&f.ipRange, "ip-range", "", "Allocate container ip from a sub-range")
	fl.BoolVar(&f.internal, "internal", false, "Restrict external access to the network")
	fl.StringArrayVar(&f.labels, "label", nil, "Set metadata on a network (key=value)")
	return cmd
}

// spec checks the flags and turns them into netmgr's request.
func (f *networkCreateFlags) spec(name string) (netmgr.NetworkSpec, error) {
	labels, err := volumeKeyValues(f.labels, false)
	if err != nil {
		return netmgr.NetworkSpec{}, fmt.Errorf("invalid --label: %w", err)
	}
	return netmgr.UserSpec{
		Name: name, Driver: f.driver, Subnet: f.subnet, Gateway: f.gateway, IPRange: f.ipRange,
		Internal: f.internal, Labels: labels,
	}.Spec()
}

// --- rm ---------------------------------------------------------------------

func newNetworkRmCommand(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Long:    "Remove one or more networks. A network with containers attached cannot be removed.",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := networkManager(g)
			if err != nil {
				return err
			}
			var errs []string
			for _, ref := range args {
				err := removeNetwork(cmd, g, m, ref)
				if err == nil {
					fmt.Fprintln(cmd.OutOrStdout(), ref)
					continue
				}
				if !(force && errors.Is(err, netmgr.ErrNotFound)) {
					errs = append(errs, err.Error())
				}
			}
			if len(errs) > 0 {
				return &exitError{code: 1, msg: "Error response: " + strings.Join(errs, "; ")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not error if the network does not exist")
	return cmd
}

// removeNetwork removes one network, naming the containers that hold it.
func removeNetwork(cmd *cobra.Command, g *globals, m *netmgr.Manager, ref string) error {
	n, err := m.Find(ref)
	if err != nil {
		return err
	}
	err = m.RemoveNetwork(cmd.Context(), n.Name)
	var inUse *netmgr.InUseError
	if errors.As(err, &inUse) {
		return fmt.Errorf("network %s is in use by container(s) %s", n.Name,
			strings.Join(containerNames(g.paths(), inUse.Containers), ", "))
	}
	if err != nil {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	return nil
}

// --- prune ------------------------------------------------------------------

func newNetworkPruneCommand(g *globals) *cobra.Command {
	var force bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Long:  "Remove every network no container is attached to, compose projects' included, as docker does.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := netmgr.ParseFilters(filters)
			if err != nil {
				return err
			}
			for k := range filter {
				if k != "label" {
					return fmt.Errorf("invalid filter %q: network prune accepts label", k)
				}
			}
			out := cmd.OutOrStdout()
			if !force {
				fmt.Fprint(out, "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ")
				if !confirmed(cmd.InOrStdin()) {
					return nil
				}
			}
			m, err := networkManager(g)
			if err != nil {
				return err
			}
			removed, err := m.Prune(cmd.Context(), filter)
			if len(removed) > 0 {
				fmt.Fprintln(out, "Deleted Networks:")
				for _, n := range removed {
					fmt.Fprintln(out, n)
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, `Provide filter values (e.g. "label=<key>=<value>")`)
	return cmd
}
