package netmgr

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
)

// bridgePrefix starts every berth bridge name; the nftables rules match
// other berth bridges by it ("brb-*").
const bridgePrefix = "brb-"

// bridgeName derives a kernel name (at most 15 bytes) from a network name.
// salt > 0 picks another name when two networks hash alike.
func bridgeName(network string, salt int) string {
	s := network
	if salt > 0 {
		s = fmt.Sprintf("%s#%d", network, salt)
	}
	h := sha256.Sum256([]byte(s))
	return bridgePrefix + hex.EncodeToString(h[:4])
}

// hwAddr makes a locally administered MAC address from an IPv4 address.
// Giving a reused address the same MAC spares peers a stale ARP entry, and
// a bridge with an explicit MAC keeps it when ports come and go.
func hwAddr(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x02, 0x62, b[0], b[1], b[2], b[3]}
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// ensureBridge creates the network's bridge if missing, gives it the
// gateway address and brings it up.
func ensureBridge(n *Network) error {
	link, err := netlink.LinkByName(n.Bridge)
	if isNotFound(err) {
		la := netlink.NewLinkAttrs()
		la.Name = n.Bridge
		la.HardwareAddr = hwAddr(n.Gateway)
		err = netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la})
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create bridge %s: %w", n.Bridge, err)
		}
		link, err = netlink.LinkByName(n.Bridge)
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return fmt.Errorf("%w: %s exists and is a %s, not a bridge", ErrConflict, n.Bridge, link.Type())
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{
		IP:   n.Gateway.AsSlice(),
		Mask: net.CIDRMask(n.Subnet.Bits(), 32),
	}}
	if err := netlink.AddrReplace(link, gw); err != nil {
		return fmt.Errorf("bridge %s: address %s: %w", n.Bridge, gw.IPNet, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bridge %s: up: %w", n.Bridge, err)
	}
	return nil
}

// removeBridge deletes a bridge; a missing one is not an error. The kernel
// drops its address and routes with it, and frees any port left on it.
func removeBridge(name string) error {
	return removeLink("bridge", name)
}

// removeLink deletes a link by name; a missing one is not an error.
func removeLink(kind, name string) error {
	link, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	if err := netlink.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s %s: %w", kind, name, err)
	}
	return nil
}

// enableForwarding turns on IPv4 forwarding in the current network
// namespace (a namespaced sysctl), which NAT out of a bridge needs.
func enableForwarding() error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 && b[0] == '1' {
		return nil
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable ip_forward: %w", err)
	}
	return nil
}
