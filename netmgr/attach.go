package netmgr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/berthrun/berth/internal/names"
)

// AttachSpec connects a container's network namespace to a network.
type AttachSpec struct {
	Network     string
	ContainerID string
	NetNSPath   string // a netns file the caller owns (see NewNetNS)
	IfName      string // inside the container; "eth0" if empty
	IPv4        netip.Addr
	MAC         net.HardwareAddr // derived from the address if nil
	// Aliases are the network's aliases for the container; Names are its
	// service name, container name and hostname. Both answer in DNS.
	Aliases []string
	Names   []string
	// DefaultRoute routes the container out through this network's
	// gateway. Ignored on internal networks.
	DefaultRoute bool
}

// hostIfName names the bridge side of a container's veth. It is derived
// from network and container, so a teardown finds it without the state.
func hostIfName(network, containerID string) string {
	h := sha256.Sum256([]byte(network + "\x00" + containerID))
	return "vb" + hex.EncodeToString(h[:5]) // 12 bytes
}

// Attach creates the container's interface on a network: a veth pair
// whose peer is created directly inside the container's namespace, the
// host side on the bridge; inside, the address, MAC, link and lo up, and
// the default route when asked. Attaching a container that is attached
// already returns its endpoint.
func (m *Manager) Attach(ctx context.Context, spec AttachSpec) (Endpoint, error) {
	if err := checkName(spec.Network); err != nil {
		return Endpoint{}, err
	}
	if spec.ContainerID == "" || spec.NetNSPath == "" {
		return Endpoint{}, invalidf("attach: container ID and netns path are required")
	}
	if spec.IfName == "" {
		spec.IfName = "eth0"
	}
	if len(spec.IfName) > 15 || names.Network(spec.IfName) != nil {
		return Endpoint{}, invalidf("interface name %q", spec.IfName)
	}
	ep, n, fresh, err := m.reserve(ctx, spec)
	if err != nil || !fresh {
		return ep, err
	}
	// The veth is made outside the state lock, which every container start
	// and stop on the host takes: the endpoint is recorded, so no other
	// attach takes its address or name, and a crash leaves what Detach
	// and adoption clean.
	mac, err := net.ParseMAC(ep.MAC)
	if err == nil {
		err = setupVeth(n, ep, mac)
	}
	if err != nil {
		removeVeth(ep.HostIfName)
		if uerr := m.unreserve(ctx, ep); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return Endpoint{}, fmt.Errorf("attach %s to %s: %w", spec.ContainerID, n.Name, err)
	}
	return ep, nil
}

// reserve records the endpoint of spec under the state lock, with its
// address, and returns it with its network; fresh is false when the
// container is attached already (the endpoint returned is that one).
func (m *Manager) reserve(ctx context.Context, spec AttachSpec) (Endpoint, *Network, bool, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return Endpoint{}, nil, false, err
	}
	defer unlock()
	n, err := m.load(spec.Network)
	if err != nil {
		return Endpoint{}, nil, false, err
	}
	if i, ok := n.endpoint(spec.ContainerID); ok {
		ep := n.Endpoints[i]
		if _, err := netlink.LinkByName(ep.HostIfName); err == nil && ep.NetNSPath == spec.NetNSPath {
			return ep, n, false, nil
		}
		// A stale record (the container's namespace died with its veth, or
		// it has a new one): start again, on the same address unless
		// another is asked for.
		if err := removeVeth(ep.HostIfName); err != nil {
			return Endpoint{}, nil, false, err
		}
		n.dropEndpoint(spec.ContainerID)
		if !spec.IPv4.IsValid() {
			spec.IPv4 = ep.IP()
		}
	}
	alloc := newIPAM(n)
	ip, err := alloc.allocate(spec.ContainerID, spec.IPv4)
	if err != nil {
		return Endpoint{}, nil, false, err
	}
	mac := spec.MAC
	if mac == nil {
		mac = hwAddr(ip)
	}
	ep := Endpoint{
		Network:      n.Name,
		ContainerID:  spec.ContainerID,
		NetNSPath:    spec.NetNSPath,
		IfName:       spec.IfName,
		HostIfName:   hostIfName(n.Name, spec.ContainerID),
		Address:      netip.PrefixFrom(ip, n.Subnet.Bits()),
		Gateway:      n.Gateway,
		MAC:          mac.String(),
		Names:        spec.Names,
		Aliases:      spec.Aliases,
		DefaultRoute: spec.DefaultRoute && !n.Internal,
		Created:      time.Now().UTC(),
	}
	n.putEndpoint(ep)
	n.LastIP = alloc.last
	// Record first, so a crash mid-way leaves an endpoint Detach can clean.
	if err := m.save(n); err != nil {
		return Endpoint{}, nil, false, err
	}
	return ep, n, true, nil
}

// unreserve drops the endpoint reserve recorded, unless it has been
// replaced since.
func (m *Manager) unreserve(ctx context.Context, ep Endpoint) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	n, err := m.load(ep.Network)
	if err != nil {
		return err
	}
	if i, ok := n.endpoint(ep.ContainerID); !ok || n.Endpoints[i].HostIfName != ep.HostIfName || !n.Endpoints[i].Created.Equal(ep.Created) {
		return nil
	}
	n.dropEndpoint(ep.ContainerID)
	return m.save(n)
}

func setupVeth(n *Network, ep Endpoint, mac net.HardwareAddr) error {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	ns, err := netns.GetFromPath(ep.NetNSPath)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ep.NetNSPath, err)
	}
	defer ns.Close()
	// A leftover of an earlier incarnation would make the add fail.
	if err := removeVeth(ep.HostIfName); err != nil {
		return err
	}
	la := netlink.NewLinkAttrs()
	la.Name = ep.HostIfName
	la.MTU = br.Attrs().MTU
	la.MasterIndex = br.Attrs().Index
	la.Flags = net.FlagUp
	veth := &netlink.Veth{
		LinkAttrs:        la,
		PeerName:         ep.IfName,
		PeerNamespace:    netlink.NsFd(int(ns)),
		PeerHardwareAddr: mac,
	}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: an interface named %s (or %s) exists", ErrAlreadyExists, ep.IfName, ep.HostIfName)
		}
		return fmt.Errorf("create veth: %w", err)
	}
	// Hairpin: a frame may leave by the bridge port it came in by. A
	// container that connects to a port published in the kernel and is
	// picked as that port's backend gets its own packets back through its
	// own port when br_netfilter bridges the translated packet (docker and
	// kubelet set it for the same reason).
	if err := netlink.LinkSetHairpin(veth, true); err != nil {
		return fmt.Errorf("hairpin on %s: %w", ep.HostIfName, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", ep.NetNSPath, err)
	}
	defer h.Close()
	peer, err := h.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("%s in container: %w", ep.IfName, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ep.IP().AsSlice(), Mask: net.CIDRMask(ep.Address.Bits(), 32)}}
	if err := h.AddrAdd(peer, addr); err != nil {
		return fmt.Errorf("address %s: %w", ep.Address, err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("%s up: %w", ep.IfName, err)
	}
	if err := loUp(h); err != nil {
		return err
	}
	if ep.DefaultRoute {
		r := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: ep.Gateway.AsSlice()}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("default route via %s: %w", ep.Gateway, err)
		}
	}
	return nil
}

// removeVeth deletes the host side of a veth, which takes the peer with
// it. The kernel has already deleted both if the container's namespace
// died; that is not an error.
func removeVeth(name string) error {
	return removeLink("veth", name)
}

// Detach removes a container's interface from a network and frees its
// address. Detaching what is not attached is not an error. The veth is
// deleted outside the state lock (the kernel takes tens of milliseconds)
// and the address freed only after it is gone.
func (m *Manager) Detach(ctx context.Context, containerID, network string) error {
	if err := checkName(network); err != nil {
		return err
	}
	n, err := m.load(network)
	if errors.Is(err, ErrNotFound) {
		return removeVeth(hostIfName(network, containerID))
	}
	if err != nil {
		return err
	}
	host := hostIfName(network, containerID)
	var created time.Time
	if i, ok := n.endpoint(containerID); ok {
		host, created = n.Endpoints[i].HostIfName, n.Endpoints[i].Created
	}
	if err := removeVeth(host); err != nil {
		return err
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	n, err = m.load(network)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Only the record seen above: a new attach meanwhile stays.
	if i, ok := n.endpoint(containerID); ok && n.Endpoints[i].Created.Equal(created) {
		n.dropEndpoint(containerID)
		return m.save(n)
	}
	return nil
}

// DetachAll detaches a container from every network it is on.
func (m *Manager) DetachAll(ctx context.Context, containerID string) error {
	eps, err := m.Endpoints(containerID)
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		errs = append(errs, m.Detach(ctx, containerID, ep.Network))
	}
	return errors.Join(errs...)
}

// SetHealthy marks a container's endpoints healthy or not; DNS leaves
// unhealthy ones out of its answers.
func (m *Manager) SetHealthy(ctx context.Context, containerID string, healthy bool) error {
	// Most calls change nothing (a container starting with endpoints that
	// are already healthy): files are replaced by rename, so a look
	// without the host-wide lock tells, and a writer that changes them
	// after it is ordered after this call.
	if all, err := m.loadAll(); err == nil && !needsHealth(all, containerID, healthy) {
		return nil
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	all, err := m.loadAll()
	if err != nil {
		return err
	}
	for _, n := range all {
		i, ok := n.endpoint(containerID)
		if !ok || n.Endpoints[i].Unhealthy == !healthy {
			continue
		}
		n.Endpoints[i].Unhealthy = !healthy
		if err := m.save(n); err != nil {
			return err
		}
	}
	return nil
}

// needsHealth tells whether an endpoint of containerID in nets is not yet
// marked as healthy says.
func needsHealth(nets []*Network, containerID string, healthy bool) bool {
	for _, n := range nets {
		if i, ok := n.endpoint(containerID); ok && n.Endpoints[i].Unhealthy == healthy {
			return true
		}
	}
	return false
}
