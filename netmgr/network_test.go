package netmgr

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func newManager(t *testing.T) (*Manager, string) {
	t.Helper()
	dir := t.TempDir()
	m, err := New(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	return m, dir
}

func ensure(t *testing.T, m *Manager, spec NetworkSpec) Network {
	t.Helper()
	n, err := m.EnsureNetwork(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func attach(t *testing.T, m *Manager, spec AttachSpec) Endpoint {
	t.Helper()
	ep, err := m.Attach(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Detach(context.Background(), spec.ContainerID, spec.Network); err != nil {
			t.Error(err)
		}
	})
	return ep
}

// removeNet removes a network at the end of the test (after its
// endpoints, cleanups run last-in first-out).
func removeNet(t *testing.T, m *Manager, name string) {
	t.Cleanup(func() {
		if err := m.RemoveNetwork(context.Background(), name); err != nil && !errors.Is(err, ErrNotFound) {
			t.Error(err)
		}
	})
}

// dial connects from inside a namespace and returns the server's line.
func dial(t *testing.T, ns, addr string, timeout time.Duration) (string, error) {
	t.Helper()
	var line string
	var err error
	inNS(t, ns, func() {
		var c net.Conn
		c, err = net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		line, err = bufio.NewReader(c).ReadString('\n')
	})
	return strings.TrimSpace(line), err
}

// uplink gives the sandbox's "host" a way out: a veth to a namespace
// "outside" (10.250.0.2) that has no route back to any berth subnet, so
// only masqueraded traffic gets answers.
func uplink(t *testing.T, dir string) (outsideNS string) {
	t.Helper()
	outside := newNS(t, dir, "outside")
	la := netlink.NewLinkAttrs()
	la.Name = "upl0"
	ns, err := os.Open(outside)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns.Fd()))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeVeth("upl0") })
	host, _ := netlink.LinkByName("upl0")
	addr, _ := netlink.ParseAddr("10.250.0.1/30")
	if err := netlink.AddrAdd(host, addr); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		t.Fatal(err)
	}
	err = withNS(outside, func(h *netlink.Handle) error {
		l, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		a, _ := netlink.ParseAddr("10.250.0.2/30")
		if err := h.AddrAdd(l, a); err != nil {
			return err
		}
		return h.LinkSetUp(l)
	})
	if err != nil {
		t.Fatal(err)
	}
	return outside
}

func TestNetworks(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m, dir := newManager(t)

	n1 := ensure(t, m, NetworkSpec{Name: "proj_default", Project: "proj", Labels: map[string]string{"com.docker.compose.project": "proj"}})
	removeNet(t, m, n1.Name)
	n2 := ensure(t, m, NetworkSpec{Name: "other_default", Project: "other"})
	removeNet(t, m, n2.Name)
	n3 := ensure(t, m, NetworkSpec{Name: "proj_back", Project: "proj", Internal: true})
	removeNet(t, m, n3.Name)
	if n1.Subnet.Overlaps(n2.Subnet) || n1.Subnet.Overlaps(n3.Subnet) || n2.Subnet.Overlaps(n3.Subnet) {
		t.Fatalf("overlapping subnets %s %s %s", n1.Subnet, n2.Subnet, n3.Subnet)
	}
	if len(n1.Bridge) > 15 || !strings.HasPrefix(n1.Bridge, bridgePrefix) {
		t.Fatalf("bridge name %q", n1.Bridge)
	}
	// Ensuring again is a no-op that returns the same network.
	if again := ensure(t, m, NetworkSpec{Name: "proj_default", Project: "proj"}); again.ID != n1.ID || again.Subnet != n1.Subnet {
		t.Fatalf("second EnsureNetwork changed the network: %+v", again)
	}
	if _, err := m.EnsureNetwork(ctx, NetworkSpec{Name: "proj_default", Internal: true}); !errors.Is(err, ErrConflict) {
		t.Fatalf("EnsureNetwork with other settings: %v, want ErrConflict", err)
	}

	// The kernel's view of the bridge.
	br, err := netlink.LinkByName(n1.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if br.Type() != "bridge" || br.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("bridge %s: type %s flags %v", n1.Bridge, br.Type(), br.Attrs().Flags)
	}
	addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != netip.PrefixFrom(n1.Gateway, n1.Subnet.Bits()).String() {
		t.Fatalf("bridge addresses %v, want gateway %s", addrs, n1.Gateway)
	}

	nsA, nsB := newNS(t, dir, "a"), newNS(t, dir, "b")
	nsC, nsD := newNS(t, dir, "c"), newNS(t, dir, "d")
	epA := attach(t, m, AttachSpec{Network: n1.Name, ContainerID: "a", NetNSPath: nsA, DefaultRoute: true, Names: []string{"a"}})
	epB := attach(t, m, AttachSpec{Network: n1.Name, ContainerID: "b", NetNSPath: nsB, DefaultRoute: true, IPv4: netip.MustParseAddr(addr4(u32(n1.Gateway) + 100).String())})
	epC := attach(t, m, AttachSpec{Network: n2.Name, ContainerID: "c", NetNSPath: nsC, DefaultRoute: true})
	epD := attach(t, m, AttachSpec{Network: n3.Name, ContainerID: "d", NetNSPath: nsD, DefaultRoute: true})
	if epB.IP() != addr4(u32(n1.Gateway)+100) {
		t.Fatalf("requested address not honoured: %s", epB.IP())
	}
	if epD.DefaultRoute {
		t.Fatal("internal network endpoint got a default route")
	}
	if _, err := m.Attach(ctx, AttachSpec{Network: n1.Name, ContainerID: "x", NetNSPath: nsC, IfName: "eth1", IPv4: epB.IP()}); !errors.Is(err, ErrConflict) {
		t.Fatalf("attach with a held address: %v, want ErrConflict", err)
	}
	if _, err := m.Attach(ctx, AttachSpec{Network: n1.Name, ContainerID: "x", NetNSPath: nsC, IfName: "eth1", IPv4: n1.Gateway}); !errors.Is(err, ErrConflict) {
		t.Fatalf("attach with the gateway address: %v, want ErrConflict", err)
	}
	// Attaching again returns the same endpoint.
	if again, err := m.Attach(ctx, AttachSpec{Network: n1.Name, ContainerID: "a", NetNSPath: nsA}); err != nil || again.IP() != epA.IP() {
		t.Fatalf("second attach: %v %v", again.IP(), err)
	}

	// The kernel's view inside A.
	err = withNS(nsA, func(h *netlink.Handle) error {
		eth, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		if eth.Attrs().Flags&net.FlagUp == 0 || eth.Attrs().HardwareAddr.String() != epA.MAC {
			t.Errorf("eth0: flags %v mac %s, want up and %s", eth.Attrs().Flags, eth.Attrs().HardwareAddr, epA.MAC)
		}
		addrs, _ := h.AddrList(eth, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != epA.Address.String() {
			t.Errorf("eth0 addresses %v, want %s", addrs, epA.Address)
		}
		routes, _ := h.RouteList(eth, netlink.FAMILY_V4)
		if !slices.ContainsFunc(routes, func(r netlink.Route) bool {
			return (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.Equal(n1.Gateway.AsSlice())
		}) {
			t.Errorf("no default route via %s: %v", n1.Gateway, routes)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	host, err := netlink.LinkByName(epA.HostIfName)
	if err != nil || host.Attrs().MasterIndex != br.Attrs().Index {
		t.Fatalf("host side %s not on bridge: %v", epA.HostIfName, err)
	}
	// Hairpin, for a container that a published port sends to itself.
	if pi, err := netlink.LinkGetProtinfo(host); err != nil || !pi.Hairpin {
		t.Errorf("bridge port %s: hairpin %v, %v", epA.HostIfName, pi.Hairpin, err)
	}

	// A serves; B on the same network reaches it, C and D on other
	// networks do not.
	listenIn(t, nsA, netip.AddrPortFrom(epA.IP(), 8080).String())
	target := netip.AddrPortFrom(epA.IP(), 8080).String()
	if line, err := dial(t, nsB, target, 2*time.Second); err != nil || line != "hello "+epB.IP().String() {
		t.Fatalf("B -> A: %q %v", line, err)
	}
	if line, err := dial(t, nsC, target, 500*time.Millisecond); err == nil {
		t.Fatalf("C on another network reached A: %q", line)
	}
	// D has no route out of its internal network; give it one: the rules
	// must still stop it.
	if line, err := dial(t, nsD, target, 500*time.Millisecond); err == nil {
		t.Fatalf("D on an internal network reached A: %q", line)
	}
	withNS(nsD, func(h *netlink.Handle) error {
		return h.RouteAdd(&netlink.Route{Gw: n3.Gateway.AsSlice()})
	})
	if line, err := dial(t, nsD, target, 500*time.Millisecond); err == nil {
		t.Fatalf("D on an internal network reached A via its gateway: %q", line)
	}

	// Outbound NAT: the outside sees the host's uplink address, and the
	// internal network gets nowhere.
	outside := uplink(t, dir)
	listenIn(t, outside, "10.250.0.2:9000")
	if line, err := dial(t, nsA, "10.250.0.2:9000", 2*time.Second); err != nil || line != "hello 10.250.0.1" {
		t.Fatalf("A -> outside: %q %v, want hello 10.250.0.1 (masqueraded)", line, err)
	}
	if line, err := dial(t, nsC, "10.250.0.2:9000", 2*time.Second); err != nil || line != "hello 10.250.0.1" {
		t.Fatalf("C -> outside: %q %v", line, err)
	}
	if line, err := dial(t, nsD, "10.250.0.2:9000", 500*time.Millisecond); err == nil {
		t.Fatalf("D on an internal network got out: %q", line)
	}

	// Removal refuses while attached.
	err = m.RemoveNetwork(ctx, n1.Name)
	var inuse *InUseError
	if !errors.As(err, &inuse) || !errors.Is(err, ErrInUse) || !slices.Equal(inuse.Containers, []string{"a", "b"}) {
		t.Fatalf("RemoveNetwork while attached: %v", err)
	}
	list, err := m.Networks()
	if err != nil || len(list) != 3 {
		t.Fatalf("Networks: %d %v", len(list), err)
	}
	eps, err := m.Endpoints("a")
	if err != nil || len(eps) != 1 || eps[0].IP() != epA.IP() {
		t.Fatalf("Endpoints(a): %v %v", eps, err)
	}
	_ = epC
}

func TestDetachFreesAddress(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m, dir := newManager(t)
	n := ensure(t, m, NetworkSpec{Name: "p_default", Project: "p", Subnet: netip.MustParsePrefix("10.77.0.0/29")})
	removeNet(t, m, n.Name)
	// A /29 has 8 addresses: network, gateway and broadcast leave 5.
	var eps []Endpoint
	for i := range 5 {
		ns := newNS(t, dir, "c"+string(rune('0'+i)))
		eps = append(eps, attach(t, m, AttachSpec{Network: n.Name, ContainerID: "c" + string(rune('0'+i)), NetNSPath: ns}))
	}
	ns := newNS(t, dir, "extra")
	if _, err := m.Attach(ctx, AttachSpec{Network: n.Name, ContainerID: "extra", NetNSPath: ns}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("attach to a full network: %v, want ErrExhausted", err)
	}
	if err := m.Detach(ctx, "c2", n.Name); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx, "c2", n.Name); err != nil {
		t.Fatalf("second detach: %v", err)
	}
	if _, err := netlink.LinkByName(eps[2].HostIfName); err == nil {
		t.Fatal("veth still there after Detach")
	}
	ep := attach(t, m, AttachSpec{Network: n.Name, ContainerID: "extra", NetNSPath: ns})
	if ep.IP() != eps[2].IP() {
		t.Fatalf("got %s, want the freed %s", ep.IP(), eps[2].IP())
	}
}

func TestSubnetPoolSkipsHostRoutes(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m, _ := newManager(t)
	// A host interface on docker's first subnet. This kernel has no
	// dummy driver; an empty bridge does as well.
	la := netlink.NewLinkAttrs()
	la.Name = "hostif0"
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(&netlink.Bridge{LinkAttrs: la}) })
	d, _ := netlink.LinkByName("hostif0")
	a, _ := netlink.ParseAddr("172.17.0.1/16")
	if err := netlink.AddrAdd(d, a); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(d); err != nil {
		t.Fatal(err)
	}
	n1 := ensure(t, m, NetworkSpec{Name: "one", Project: "p"})
	removeNet(t, m, "one")
	n2 := ensure(t, m, NetworkSpec{Name: "two", Project: "p"})
	removeNet(t, m, "two")
	if n1.Subnet.String() != "172.18.0.0/16" || n2.Subnet.String() != "172.19.0.0/16" {
		t.Fatalf("subnets %s %s, want 172.18.0.0/16 and 172.19.0.0/16", n1.Subnet, n2.Subnet)
	}
	if n1.Gateway.String() != "172.18.0.1" {
		t.Fatalf("gateway %s", n1.Gateway)
	}
	_, err := m.EnsureNetwork(ctx, NetworkSpec{Name: "three", Subnet: netip.MustParsePrefix("172.19.128.0/24")})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("overlapping subnet: %v, want ErrConflict", err)
	}
	// A small pool runs out.
	_, err = m.EnsureNetwork(ctx, NetworkSpec{Name: "three", Pool: []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("172.18.0.0/16")}})
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("exhausted pool: %v, want ErrExhausted", err)
	}
	if _, err := m.Network("three"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed network left state: %v", err)
	}
}

func TestSharedNetworkRelease(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m, dir := newManager(t)
	ensure(t, m, NetworkSpec{Name: "shared", Project: "alpha"})
	// The second project is another process: another Manager on the dir.
	m2, err := New(m.Dir())
	if err != nil {
		t.Fatal(err)
	}
	n := ensure(t, m2, NetworkSpec{Name: "shared", Project: "beta"})
	if !slices.Equal(n.Users, []string{"alpha", "beta"}) {
		t.Fatalf("users %v", n.Users)
	}
	if removed, err := m.Release(ctx, "shared", "alpha"); err != nil || removed {
		t.Fatalf("release by alpha: removed=%v %v", removed, err)
	}
	if _, err := netlink.LinkByName(n.Bridge); err != nil {
		t.Fatalf("bridge gone after the first release: %v", err)
	}
	// Still used by a container: the last release keeps it.
	ns := newNS(t, dir, "c")
	if _, err := m2.Attach(ctx, AttachSpec{Network: "shared", ContainerID: "c", NetNSPath: ns}); err != nil {
		t.Fatal(err)
	}
	if removed, err := m2.Release(ctx, "shared", "beta"); !errors.Is(err, ErrInUse) || removed {
		t.Fatalf("release with a container attached: removed=%v %v", removed, err)
	}
	if err := m2.Detach(ctx, "c", "shared"); err != nil {
		t.Fatal(err)
	}
	if removed, err := m2.Release(ctx, "shared", "beta"); err != nil || !removed {
		t.Fatalf("last release: removed=%v %v", removed, err)
	}
	if _, err := netlink.LinkByName(n.Bridge); err == nil {
		t.Fatal("bridge left after the last release")
	}
	if _, err := m.Network("shared"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("state left after the last release: %v", err)
	}
	if removed, err := m.Release(ctx, "shared", "alpha"); err != nil || removed {
		t.Fatalf("release of a removed network: %v %v", removed, err)
	}

	// A network made by `berth network create` outlives its users.
	ensure(t, m, NetworkSpec{Name: "mine", External: true})
	ensure(t, m, NetworkSpec{Name: "mine", Project: "gamma"})
	if removed, err := m.Release(ctx, "mine", "gamma"); err != nil || removed {
		t.Fatalf("release of an external network: removed=%v %v", removed, err)
	}
	if err := m.RemoveNetwork(ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveNetwork(ctx, "mine"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v, want ErrNotFound", err)
	}
}

// TestTeardownHalfBuilt removes networks and endpoints whose kernel side is
// partly gone.
func TestTeardownHalfBuilt(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m, dir := newManager(t)
	n := ensure(t, m, NetworkSpec{Name: "half", Project: "p"})
	ns := newNS(t, dir, "c")
	ep, err := m.Attach(ctx, AttachSpec{Network: "half", ContainerID: "c", NetNSPath: ns})
	if err != nil {
		t.Fatal(err)
	}
	// The container's namespace dies: the kernel deletes the veth pair.
	if err := RemoveNetNS(ns); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx, "c", "half"); err != nil {
		t.Fatalf("detach with the netns gone: %v", err)
	}
	if _, err := netlink.LinkByName(ep.HostIfName); err == nil {
		t.Fatal("veth left")
	}
	// The bridge and the rules vanish behind berth's back.
	removeBridge(n.Bridge)
	if err := removeNAT(ctx, n.Bridge); err != nil {
		t.Fatal(err)
	}
	// EnsureNetwork repairs...
	ensure(t, m, NetworkSpec{Name: "half", Project: "p"})
	if _, err := netlink.LinkByName(n.Bridge); err != nil {
		t.Fatalf("EnsureNetwork did not repair the bridge: %v", err)
	}
	// ...and RemoveNetwork copes with a half-built network.
	removeBridge(n.Bridge)
	if err := m.RemoveNetwork(ctx, "half"); err != nil {
		t.Fatal(err)
	}
	// An endpoint record whose veth never got made.
	ensure(t, m, NetworkSpec{Name: "half", Project: "p"})
	if _, err := m.Attach(ctx, AttachSpec{Network: "half", ContainerID: "d", NetNSPath: filepath.Join(dir, "no-such-netns")}); err == nil {
		t.Fatal("attach to a missing netns succeeded")
	}
	if got, _ := m.Network("half"); len(got.Endpoints) != 0 {
		t.Fatalf("failed attach left an endpoint: %+v", got.Endpoints)
	}
	if err := m.RemoveNetwork(ctx, "half"); err != nil {
		t.Fatal(err)
	}
}

// TestReattach: a container restarted in a new namespace gets its address
// back, and DetachAll takes it off every network.
func TestReattach(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m, dir := newManager(t)
	n1 := ensure(t, m, NetworkSpec{Name: "one", Project: "p"})
	removeNet(t, m, n1.Name)
	n2 := ensure(t, m, NetworkSpec{Name: "two", Project: "p"})
	removeNet(t, m, n2.Name)
	ns1 := newNS(t, dir, "first")
	ep1, err := m.Attach(ctx, AttachSpec{Network: "one", ContainerID: "c", NetNSPath: ns1})
	if err != nil {
		t.Fatal(err)
	}
	// Another container takes the next address meanwhile.
	other := attach(t, m, AttachSpec{Network: "one", ContainerID: "o", NetNSPath: newNS(t, dir, "other")})
	ns2 := newNS(t, dir, "second")
	ep2, err := m.Attach(ctx, AttachSpec{Network: "one", ContainerID: "c", NetNSPath: ns2})
	if err != nil {
		t.Fatal(err)
	}
	if ep2.IP() != ep1.IP() || ep2.IP() == other.IP() {
		t.Fatalf("restarted container got %s, had %s", ep2.IP(), ep1.IP())
	}
	withNS(ns1, func(h *netlink.Handle) error {
		if _, err := h.LinkByName("eth0"); err == nil {
			t.Error("old namespace still has eth0")
		}
		return nil
	})
	if _, err := m.Attach(ctx, AttachSpec{Network: "two", ContainerID: "c", NetNSPath: ns2, IfName: "eth1"}); err != nil {
		t.Fatal(err)
	}
	// An interface name taken inside the container is a clear error.
	if _, err := m.Attach(ctx, AttachSpec{Network: "two", ContainerID: "x", NetNSPath: ns2, IfName: "eth1"}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("attach with a taken interface name: %v, want ErrAlreadyExists", err)
	}
	if err := m.DetachAll(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if eps, _ := m.Endpoints("c"); len(eps) != 0 {
		t.Fatalf("endpoints left: %v", eps)
	}
	if err := RemoveNetNS(ns1); err != nil {
		t.Fatal(err)
	}
	if err := RemoveNetNS(ns1); err != nil {
		t.Fatalf("second RemoveNetNS: %v", err)
	}
	if err := NewNetNS(ns2); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("NewNetNS on an existing file: %v", err)
	}
}
