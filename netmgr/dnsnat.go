package netmgr

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// redirectDNS installs, in the network namespace of the calling thread,
// the ruleset that sends queries to 127.0.0.11:53 to the server's own
// ports: table ip berth_dns, chain output (nat, priority -100), one DNAT
// rule for UDP and one for TCP. It goes through netlink directly: one
// transaction and no nft process per container. The table is flushed
// first, so a new supervisor's ports replace an old one's.
func redirectDNS(udpPort, tcpPort int) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "berth_dns"})
	c.FlushTable(t)
	ch := c.AddChain(&nftables.Chain{
		Name:     "output",
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookOutput,
		Priority: nftables.ChainPriorityNATDest,
	})
	addr := netip.MustParseAddr(DNSAddr).As4()
	for _, r := range []struct {
		proto byte
		port  int
	}{{unix.IPPROTO_UDP, udpPort}, {unix.IPPROTO_TCP, tcpPort}} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			// ip daddr 127.0.0.11
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr[:]},
			// udp / tcp
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.proto}},
			// dport 53
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(53)},
			// dnat to 127.0.0.11:<port>
			&expr.Immediate{Register: 1, Data: addr[:]},
			&expr.Immediate{Register: 2, Data: port(r.port)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: dns redirect: %w", err)
	}
	return nil
}

func port(p int) []byte {
	b := make([]byte, 2)
	binary.BigEndian.PutUint16(b, uint16(p))
	return b
}
