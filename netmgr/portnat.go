package netmgr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// PortTablePrefix starts the name of every table of published ports; one
// table per supervisor, so that a project's ports are replaced and removed
// whole without reading anyone else's rules.
const PortTablePrefix = "berth_ports_"

// PublishedPort is one published port served in the kernel: packets to
// HostIP:HostPort (any local address when HostIP is invalid) are sent to
// one of Backends, port Target, in turn.
type PublishedPort struct {
	Protocol string // "tcp" or "udp"
	HostIP   netip.Addr
	HostPort uint16
	Target   uint16
	Backends []netip.Addr // IPv4; none: the port is only held, nothing answers
}

// SetPublishedPorts replaces the whole table of published ports in one
// batch: DNAT in prerouting (traffic from outside and from containers) and
// in output (the host's own connections, 127.0.0.1 included), spread over
// the backends with "numgen inc mod N" through a map; masquerade in
// postrouting of the connections so translated that come from 127.0.0.0/8
// or from a berth bridge, so that replies come back through the host.
// Open connections live in conntrack and are not affected by a new table.
// No ports removes the table.
func SetPublishedPorts(table string, ports []PublishedPort) error {
	if len(ports) == 0 {
		return RemovePublishedPorts(table)
	}
	// The output chain's translation of 127.0.0.1 would be dropped as a
	// martian on the bridge without it (docker sets it the same way when
	// it runs without its userland proxy). Set first, so that a process
	// killed in between never leaves a table whose loopback rules fail.
	if err := enableRouteLocalnet(); err != nil {
		return err
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	// Deleting and adding the table again in the same batch replaces its
	// maps too (a flush would only empty the chains, and a map element
	// with a new value is refused); the change is still atomic.
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: table}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	if err := buildPortTable(c, t, ports); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: published ports: %w", err)
	}
	return nil
}

// RemovePublishedPorts deletes the table; a table already gone is fine.
func RemovePublishedPorts(table string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	// Adding first makes the delete never fail on a missing table.
	c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: table})
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: table})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nftables: removing %s: %w", table, err)
	}
	return nil
}

// portBatch is what buildPortTable adds, kept apart from the connection so
// that the unit tests can look at it.
type portBatch interface {
	AddChain(*nftables.Chain) *nftables.Chain
	AddRule(*nftables.Rule) *nftables.Rule
	AddSet(*nftables.Set, []nftables.SetElement) error
}

func buildPortTable(c portBatch, t *nftables.Table, ports []PublishedPort) error {
	accept := nftables.ChainPolicyAccept
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	for i, p := range ports {
		if len(p.Backends) == 0 {
			continue // no rule: the held socket answers (TCP resets)
		}
		m := &nftables.Set{Table: t, Name: fmt.Sprintf("backends_%d", i), ID: uint32(i + 1), IsMap: true,
			KeyType: nftables.TypeInteger, DataType: nftables.TypeIPAddr, KeyByteOrder: binaryutil.NativeEndian}
		elems := make([]nftables.SetElement, len(p.Backends))
		for j, a := range p.Backends {
			if !a.Is4() {
				return fmt.Errorf("published port %d: backend %s is not IPv4", p.HostPort, a)
			}
			b := a.As4()
			elems[j] = nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(j)), Val: b[:]}
		}
		if err := c.AddSet(m, elems); err != nil {
			return fmt.Errorf("nftables: map %s: %w", m.Name, err)
		}
		exprs, err := dnatExprs(p, m)
		if err != nil {
			return err
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: exprs})
		c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: exprs})
	}
	// ct status dnat ip saddr 127.0.0.0/8 masquerade
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(ctDNAT(),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127}},
		&expr.Masq{})})
	// ct status dnat iifname "brb-*" masquerade: hairpin from a container.
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(ctDNAT(),
		append(ifIs(expr.MetaKeyIIFNAME, expr.CmpOpEq, anyBridge), &expr.Masq{})...)})
	// ct status dnat ip saddr B ip daddr B masquerade, for each backend B:
	// a replica sent to itself. With br_netfilter the translated packet is
	// bridged back out of the port it came in by (the veth's hairpin mode,
	// attach.go), and postrouting sees no input interface, so the rule
	// above misses it; without the masquerade the replica would answer
	// itself directly, from an address its client never dialled.
	seen := map[netip.Addr]bool{}
	for _, p := range ports {
		for _, a := range p.Backends {
			if seen[a] {
				continue
			}
			seen[a] = true
			b := a.As4()
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(ctDNAT(),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b[:]},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b[:]},
				&expr.Masq{})})
		}
	}
	return nil
}

// dnatExprs is one port's rule: match address, protocol and port, pick a
// backend from the map by a counter, translate to it.
func dnatExprs(p PublishedPort, m *nftables.Set) ([]expr.Any, error) {
	var proto byte
	switch p.Protocol {
	case "tcp":
		proto = unix.IPPROTO_TCP
	case "udp":
		proto = unix.IPPROTO_UDP
	default:
		return nil, fmt.Errorf("published port %d: protocol %q", p.HostPort, p.Protocol)
	}
	var exprs []expr.Any
	if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
		if !p.HostIP.Is4() {
			return nil, fmt.Errorf("published port %d: host address %s is not IPv4", p.HostPort, p.HostIP)
		}
		a := p.HostIP.As4()
		exprs = append(exprs, // ip daddr <host ip>
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]})
	} else {
		exprs = append(exprs, // fib daddr type local
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
	}
	exprs = append(exprs,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(int(p.HostPort))},
		// dnat to numgen inc mod N map @backends_i : target
		&expr.Numgen{Register: 1, Modulus: uint32(len(p.Backends)), Type: unix.NFT_NG_INCREMENTAL},
		&expr.Lookup{SourceRegister: 1, SetName: m.Name, SetID: m.ID, IsDestRegSet: true, DestRegister: 1},
		&expr.Immediate{Register: 2, Data: port(int(p.Target))},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	)
	return exprs, nil
}

// ctDNAT matches "ct status dnat".
func ctDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// enableRouteLocalnet lets every berth bridge route 127.0.0.0/8 sources.
func enableRouteLocalnet() error {
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("listing interfaces: %w", err)
	}
	for _, i := range ifs {
		if !strings.HasPrefix(i.Name, bridgePrefix) {
			continue
		}
		p := "/proc/sys/net/ipv4/conf/" + i.Name + "/route_localnet"
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("route_localnet on %s: %w", i.Name, err)
		}
	}
	return nil
}

// KernelNATAvailable says whether the kernel takes nat chains in nf_tables:
// it adds and deletes a probe table with one, in one batch.
func KernelNATAvailable() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: PortTablePrefix + "probe"})
	accept := nftables.ChainPolicyAccept
	c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables nat: %w", err)
	}
	return nil
}

// ipsDstNAT is the conntrack status bit IPS_DST_NAT (linux/netfilter/
// nf_conntrack_common.h), which x/sys/unix does not name.
const ipsDstNAT = 1 << 5

// ForgetUDPFlows deletes the conntrack entries of a published UDP port
// that go to backend, or all of them when backend is not valid. A UDP flow
// has no end that conntrack could see: as long as the client keeps
// sending, its entry keeps its translation (to a backend that left), or
// its lack of one (datagrams sent while the port had no backend went to
// the held socket, and would go on doing so).
func ForgetUDPFlows(hostPort uint16, backend netip.Addr) error {
	f := &netlink.ConntrackFilter{}
	if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
		return err
	}
	if err := f.AddPort(netlink.ConntrackOrigDstPort, hostPort); err != nil {
		return err
	}
	if backend.IsValid() {
		if err := f.AddIP(netlink.ConntrackReplySrcIP, backend.AsSlice()); err != nil {
			return err
		}
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
		return fmt.Errorf("conntrack: forgetting UDP flows to %s: %w", backend, err)
	}
	return nil
}
