package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthrun/berth/internal/errdefs"
	"github.com/berthrun/berth/netmgr"
	"github.com/berthrun/berth/project/model"
)

// EndpointInfo is a container's place on one network, as `ps` and the
// proxy need it.
type EndpointInfo struct {
	Network string     `json:"network"`
	IP      netip.Addr `json:"ip"`
	Gateway netip.Addr `json:"gateway"`
	MAC     string     `json:"mac"`
}

// usedNetworks returns the model's networks that the services attach to.
func usedNetworks(m *model.Model, services []string) []string {
	seen := map[string]bool{}
	var keys []string
	for _, name := range services {
		svc, _ := m.Service(name)
		if svc.NetworkMode != "" {
			continue
		}
		for _, a := range svc.Networks {
			if !seen[a.Key] {
				seen[a.Key] = true
				keys = append(keys, a.Key)
			}
		}
	}
	return keys
}

// checkNetworks fails, before anything is created, when a service uses an
// external network that does not exist, or a network mode that names a
// service or container berth cannot find.
func (s *Supervisor) checkNetworks(m *model.Model, services []string) error {
	for _, key := range usedNetworks(m, services) {
		n := m.Networks[key]
		if !n.External {
			continue
		}
		if _, err := s.net.Network(n.Name); err != nil {
			if errors.Is(err, netmgr.ErrNotFound) {
				return fmt.Errorf("network %s declared as external, but could not be found: create it with \"berth network create %s\"", n.Name, n.Name)
			}
			return err
		}
	}
	for _, name := range services {
		svc, _ := m.Service(name)
		mode := svc.NetworkMode
		switch {
		case mode == "" || mode == "host" || mode == "none" || mode == "bridge":
		case strings.HasPrefix(mode, "service:"):
			if _, ok := m.Service(strings.TrimPrefix(mode, "service:")); !ok {
				return errdefs.Errorf(errdefs.ErrNotFound, "service %q: network_mode %s: no such service", name, mode)
			}
		case strings.HasPrefix(mode, "container:"):
		default:
			return fmt.Errorf("service %q: network_mode %q is not supported: use host, none, service:NAME or container:NAME", name, mode)
		}
	}
	return nil
}

// ensureNetworks creates the project's networks that the services use.
func (s *Supervisor) ensureNetworks(ctx context.Context, m *model.Model, services []string, progress func(Event)) error {
	for _, key := range usedNetworks(m, services) {
		n := m.Networks[key]
		if n.External {
			continue
		}
		if n.Driver != "" && n.Driver != "bridge" {
			return fmt.Errorf("network %s: driver %q is not supported: berth makes bridge networks", n.Name, n.Driver)
		}
		if len(n.DriverOpts) > 0 {
			progress(Event{Action: "warning", Message: fmt.Sprintf("network %s: driver_opts are ignored", n.Name)})
		}
		spec := netmgr.NetworkSpec{Name: n.Name, Internal: n.Internal, Project: s.project, Labels: map[string]string{}}
		for k, v := range n.Labels {
			spec.Labels[k] = v
		}
		spec.Labels[model.LabelProject] = s.project
		spec.Labels[model.LabelNetwork] = key
		var err error
		if n.Subnet != "" {
			if spec.Subnet, err = netip.ParsePrefix(n.Subnet); err != nil {
				return fmt.Errorf("network %s: subnet %q: %w", n.Name, n.Subnet, err)
			}
		}
		if n.Gateway != "" {
			if spec.Gateway, err = netip.ParseAddr(n.Gateway); err != nil {
				return fmt.Errorf("network %s: gateway %q: %w", n.Name, n.Gateway, err)
			}
		}
		if n.IPRange != "" {
			if spec.IPRange, err = netip.ParsePrefix(n.IPRange); err != nil {
				return fmt.Errorf("network %s: ip_range %q: %w", n.Name, n.IPRange, err)
			}
		}
		_, missing := s.net.Network(n.Name)
		if _, err := s.net.EnsureNetwork(ctx, spec); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		if missing != nil {
			progress(Event{Action: "Created", Object: "Network " + n.Name})
		}
	}
	return nil
}

// netSetup is what networking gave a new container.
type netSetup struct {
	netns     string // the namespace to join; owned when owned is set
	owned     bool
	endpoints []EndpointInfo
	hosts     []byte
	resolv    []byte
}

// setupNetwork gives a new container its network namespace and endpoints,
// by network_mode: its own namespace on the service's networks (the
// default), host, none, or another container's (service:NAME,
// container:NAME).
func (s *Supervisor) setupNetwork(ctx context.Context, svc *model.Service, id, name, hostname string) (ns netSetup, err error) {
	mode := svc.NetworkMode
	switch {
	case mode == "host":
		ns.netns = fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
		ns.hosts, _ = os.ReadFile("/etc/hosts")
		ns.resolv, _ = os.ReadFile("/etc/resolv.conf")
		return ns, nil
	case strings.HasPrefix(mode, "service:") || strings.HasPrefix(mode, "container:"):
		kind, target, _ := strings.Cut(mode, ":")
		src := s.lookup(kind, target)
		if src == nil {
			return ns, fmt.Errorf("network_mode %s: no such %s", mode, kind)
		}
		r := src.record()
		ns.netns = r.Spec.NetNSPath
		ns.endpoints = r.Endpoints
		ns.hosts, _ = os.ReadFile(filepath.Join(s.paths.ContainerDir(r.ID), "hosts"))
		ns.resolv, _ = os.ReadFile(filepath.Join(s.paths.ContainerDir(r.ID), "resolv.conf"))
		return ns, nil
	}
	ns.netns, ns.owned = s.paths.NetNS(id), true
	if err := netmgr.NewNetNS(ns.netns); err != nil {
		return ns, err
	}
	defer func() {
		if err != nil {
			_ = s.net.DetachAll(context.Background(), id)
			_ = netmgr.RemoveNetNS(ns.netns)
		}
	}()
	var ips []netip.Addr
	var gateway netip.Addr
	if mode != "none" {
		for i, a := range svc.Networks {
			spec := netmgr.AttachSpec{
				Network: a.Name, ContainerID: id, NetNSPath: ns.netns,
				IfName:  fmt.Sprintf("eth%d", i),
				Aliases: a.Aliases,
				// The container name first: reverse lookups answer it.
				Names:        dnsNames(svc, name, hostname, id),
				DefaultRoute: i == 0,
			}
			if a.IPv4 != "" {
				if spec.IPv4, err = netip.ParseAddr(a.IPv4); err != nil {
					return ns, fmt.Errorf("ipv4_address %q: %w", a.IPv4, err)
				}
			}
			if a.MAC != "" {
				if spec.MAC, err = net.ParseMAC(a.MAC); err != nil {
					return ns, fmt.Errorf("mac_address %q: %w", a.MAC, err)
				}
			}
			ep, err := s.net.Attach(ctx, spec)
			if err != nil {
				return ns, fmt.Errorf("network %s: %w", a.Name, err)
			}
			ns.endpoints = append(ns.endpoints, EndpointInfo{Network: a.Name, IP: ep.Address.Addr(), Gateway: ep.Gateway, MAC: ep.MAC})
			ips = append(ips, ep.Address.Addr())
			if i == 0 {
				gateway = ep.Gateway
			}
		}
	}
	var links []netmgr.HostsLink
	for _, l := range svc.Links {
		service, alias := netmgr.ParseLink(l)
		for _, a := range svc.Networks {
			if addrs, err := s.net.Lookup(a.Name, service); err == nil && len(addrs) > 0 {
				links = append(links, netmgr.HostsLink{Service: service, Alias: alias, IP: addrs[0]})
				break
			}
		}
	}
	ns.hosts, err = netmgr.HostsFile(netmgr.HostsConfig{
		Hostname: hostname, ContainerName: name, IPs: ips,
		ExtraHosts: svc.ExtraHosts, HostGateway: gateway, Links: links,
	})
	if err != nil {
		return ns, err
	}
	ns.resolv = netmgr.ResolvConf(svc.DNS, svc.DNSSearch, svc.DNSOpt)
	if mode == "none" {
		ns.resolv = []byte("# no network\n")
	}
	return ns, nil
}

// serveDNS starts answering at 127.0.0.11 inside the container's namespace.
func (s *Supervisor) serveDNS(ctx context.Context, r *Record) {
	if r.Spec.NetNSPath != s.paths.NetNS(r.ID) || len(r.Endpoints) == 0 {
		return
	}
	if err := s.dns.Add(ctx, netmgr.DNSContainer{ContainerID: r.ID, NetNSPath: r.Spec.NetNSPath, Upstreams: r.Config.DNS}); err != nil {
		s.logf("container %s: dns: %v", r.Name, err)
	}
}

// releaseNetworks is down's last step: the project stops using its
// networks; a network goes when no project uses it any more, never an
// external one.
func (s *Supervisor) releaseNetworks(ctx context.Context, names []string, progress func(Event)) error {
	var errs []error
	for _, n := range names {
		removed, err := s.net.Release(ctx, n, s.project)
		switch {
		case errors.Is(err, netmgr.ErrNotFound):
		case errors.Is(err, netmgr.ErrInUse):
			progress(Event{Action: "warning", Message: fmt.Sprintf("network %s is still in use", n)})
		case err != nil:
			errs = append(errs, err)
		case removed:
			progress(Event{Action: "Removed", Object: "Network " + n})
		}
	}
	return errors.Join(errs...)
}

// serving tells DNS whether the container answers: a stopped container's
// endpoint stays (it keeps its address) but leaves the answers.
func (s *Supervisor) serving(r *Record, up bool) {
	if len(r.Endpoints) == 0 || r.Spec.NetNSPath != s.paths.NetNS(r.ID) {
		return
	}
	if err := s.net.SetHealthy(s.ctx, r.ID, up); err != nil {
		s.logf("container %s: dns: %v", r.Name, err)
	}
}

// ProjectNetworks lists the networks that project uses, from netmgr's
// records (a down without the compose file needs them).
func ProjectNetworks(m networkLister, project string) ([]string, error) {
	nets, err := m.Networks()
	if err != nil {
		return nil, fmt.Errorf("networks of project %s: %w", project, err)
	}
	var out []string
	for _, n := range nets {
		for _, u := range n.Users {
			if u == project {
				out = append(out, n.Name)
				break
			}
		}
	}
	return out, nil
}

// HasLeftovers reports whether project has containers or networks for a
// down to remove. It reads the records and netmgr's state without a
// supervisor, so that a down of an empty project starts none.
func HasLeftovers(paths Paths, proj string) (bool, error) {
	recs, err := LoadRecords(paths, proj)
	if err != nil || len(recs) > 0 {
		return len(recs) > 0, err
	}
	nets, err := netmgr.New(paths.NetworkDir())
	if err != nil {
		return false, err
	}
	used, err := ProjectNetworks(nets, proj)
	return len(used) > 0, err
}
