package netmgr

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// ipam hands out addresses of one network. Its allocations are the
// endpoints recorded in the network's state file, so whatever holds the
// state lock holds the allocator.
type ipam struct {
	network string
	subnet  netip.Prefix
	rng     netip.Prefix // where dynamic addresses come from
	gateway netip.Addr
	last    netip.Addr
	used    map[netip.Addr]string // address -> container ID
}

func newIPAM(n *Network) *ipam {
	a := &ipam{
		network: n.Name,
		subnet:  n.Subnet,
		rng:     n.Subnet,
		gateway: n.Gateway,
		last:    n.LastIP,
		used:    make(map[netip.Addr]string, len(n.Endpoints)),
	}
	if n.IPRange.IsValid() {
		a.rng = n.IPRange
	}
	for _, ep := range n.Endpoints {
		a.used[ep.IP()] = ep.ContainerID
	}
	return a
}

func u32(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// bounds returns the first and last address of an IPv4 prefix.
func bounds(p netip.Prefix) (first, last uint32) {
	first = u32(p.Masked().Addr())
	return first, first | (1<<(32-p.Bits()) - 1)
}

// reserved: the subnet's network and broadcast addresses and the gateway
// are never given to a container.
func (a *ipam) reserved(ip netip.Addr) bool {
	first, last := bounds(a.subnet)
	v := u32(ip)
	return v == first || v == last || ip == a.gateway
}

// allocate returns want if it is free, or else (want invalid) the next free
// address after the cursor, wrapping around the range once.
func (a *ipam) allocate(containerID string, want netip.Addr) (netip.Addr, error) {
	if want.IsValid() {
		want = want.Unmap()
		aerr := func(reason string, err error) error {
			return &AddressError{Network: a.network, Addr: want.String(), Reason: reason, err: err}
		}
		switch {
		case !want.Is4() || !a.subnet.Contains(want):
			return netip.Addr{}, aerr("outside subnet "+a.subnet.String(), ErrInvalid)
		case a.reserved(want):
			return netip.Addr{}, aerr("reserved (network, broadcast or gateway address)", ErrConflict)
		}
		if holder, ok := a.used[want]; ok && holder != containerID {
			return netip.Addr{}, aerr("in use by container "+holder, ErrConflict)
		}
		a.used[want] = containerID
		return want, nil
	}
	first, last := bounds(a.rng)
	size := uint64(last-first) + 1
	start := first
	if a.last.IsValid() && a.rng.Contains(a.last) {
		start = u32(a.last) + 1
	}
	for i := uint64(0); i < size; i++ {
		ip := addr4(first + uint32((uint64(start-first)+i)%size))
		if a.reserved(ip) {
			continue
		}
		if _, ok := a.used[ip]; ok {
			continue
		}
		a.used[ip] = containerID
		a.last = ip
		return ip, nil
	}
	return netip.Addr{}, fmt.Errorf("network %s: %w: no free address in %s", a.network, ErrExhausted, a.rng)
}

// checkSubnet validates a network's addressing: an IPv4 subnet with room
// for a gateway and one container, a gateway and a range inside it.
func checkSubnet(subnet netip.Prefix, gateway netip.Addr, rng netip.Prefix) error {
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return invalidf("subnet %s: need an IPv4 subnet", subnet)
	}
	if subnet.Bits() > 30 {
		return invalidf("subnet %s: too small", subnet)
	}
	if subnet != subnet.Masked() {
		return invalidf("subnet %s: host bits set (did you mean %s?)", subnet, subnet.Masked())
	}
	if !subnet.Contains(gateway) {
		return invalidf("gateway %s outside subnet %s", gateway, subnet)
	}
	first, last := bounds(subnet)
	if v := u32(gateway); v == first || v == last {
		return invalidf("gateway %s is the network or broadcast address of %s", gateway, subnet)
	}
	if rng.IsValid() {
		if !rng.Addr().Is4() || rng.Bits() < subnet.Bits() || !subnet.Contains(rng.Addr()) {
			return invalidf("ip_range %s outside subnet %s", rng, subnet)
		}
	}
	return nil
}
