package netmgr

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The nftables ruleset lives in one table, "ip berth". Its base chains only
// dispatch on the interface through verdict maps; each network adds a
// chain per direction and one element per map, so adding or removing a
// network never touches the rules of another and no rule handle has to be
// found again:
//
//	forward:     iifname vmap @fwd_in   -> in-<bridge>   (traffic leaving a bridge)
//	             oifname vmap @fwd_out  -> out-<bridge>  (traffic entering a bridge)
//	postrouting: iifname vmap @nat_in   -> nat-<bridge>  (masquerade out)
//
// Every change is one netlink batch (one Flush): the kernel applies it
// whole or not at all. The table is shared by every berth state directory
// on the host (each --run-root), so nothing here flushes the whole table.
const nftTable = "berth"

// nftRules is one batch under construction on the berth table.
type nftRules struct {
	c     *nftables.Conn
	table *nftables.Table
	maps  map[string]*nftables.Set
}

// newNFTRules starts a batch that (re)declares the table and its three
// maps (baseChains adds the base chains). Adding what exists is a no-op in
// nftables, so every batch can start this way without looking at the
// kernel first.
func newNFTRules() (*nftRules, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	r := &nftRules{c: c, maps: map[string]*nftables.Set{}}
	r.table = c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable})
	// Set IDs only name a set inside one batch; fixed ones keep the
	// library's process-wide counter out of it. The key byte order is the
	// one nft records for interface names, so `nft list` shows them.
	for i, name := range []string{"fwd_in", "fwd_out", "nat_in"} {
		s := &nftables.Set{
			Table:        r.table,
			Name:         name,
			ID:           uint32(i + 1),
			IsMap:        true,
			KeyType:      nftables.TypeIFName,
			DataType:     nftables.TypeVerdict,
			KeyByteOrder: binaryutil.NativeEndian,
		}
		if err := c.AddSet(s, nil); err != nil {
			return nil, fmt.Errorf("nftables: map %s: %w", name, err)
		}
		r.maps[name] = s
	}
	return r, nil
}

// baseChains declares the two hooked chains that dispatch through the maps.
func (r *nftRules) baseChains() (forward, postrouting *nftables.Chain) {
	accept := nftables.ChainPolicyAccept
	forward = r.c.AddChain(&nftables.Chain{
		Name:     "forward",
		Table:    r.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookForward,
		Priority: nftables.ChainPriorityFilter,
		Policy:   &accept,
	})
	postrouting = r.c.AddChain(&nftables.Chain{
		Name:     "postrouting",
		Table:    r.table,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
		Policy:   &accept,
	})
	return forward, postrouting
}

func (r *nftRules) chain(name string) *nftables.Chain {
	return r.c.AddChain(&nftables.Chain{Name: name, Table: r.table})
}

func (r *nftRules) rule(ch *nftables.Chain, exprs ...expr.Any) {
	r.c.AddRule(&nftables.Rule{Table: r.table, Chain: ch, Exprs: exprs})
}

// element is the map element "<bridge> : jump <chain>".
func element(bridge, chain string) []nftables.SetElement {
	return []nftables.SetElement{{
		Key:         ifname(bridge),
		VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: chain},
	}}
}

func (r *nftRules) flush(what string) error {
	if err := r.c.Flush(); err != nil {
		return fmt.Errorf("nftables: %s: %w", what, err)
	}
	return nil
}

// ensureNAT installs (or reinstalls) a network's rules. The base chains and
// the network's chains are flushed and refilled in the same batch, so
// running it again never duplicates a rule.
func ensureNAT(_ context.Context, n *Network) error {
	br := n.Bridge
	r, err := newNFTRules()
	if err != nil {
		return err
	}
	forward, postrouting := r.baseChains()
	r.c.FlushChain(forward)
	r.c.FlushChain(postrouting)
	r.rule(forward, loadIf(expr.MetaKeyIIFNAME), vmap(r.maps["fwd_in"]))
	r.rule(forward, loadIf(expr.MetaKeyOIFNAME), vmap(r.maps["fwd_out"]))
	r.rule(postrouting, loadIf(expr.MetaKeyIIFNAME), vmap(r.maps["nat_in"]))

	in, out, nat := r.chain("in-"+br), r.chain("out-"+br), r.chain("nat-"+br)
	for _, ch := range []*nftables.Chain{in, out, nat} {
		r.c.FlushChain(ch)
	}
	// Leaving the bridge: to the same bridge is fine (seen only with
	// br_netfilter), to another berth bridge never, out of the host only
	// when not internal.
	r.rule(in, append(ifIs(expr.MetaKeyOIFNAME, expr.CmpOpEq, ifname(br)), verdict(expr.VerdictAccept))...)
	if !n.Internal {
		// A published port served in the kernel (portnat.go) may send a
		// container's connection to a replica on another bridge.
		r.rule(in, append(ctDNAT(), verdict(expr.VerdictAccept))...)
	}
	r.rule(in, append(ifIs(expr.MetaKeyOIFNAME, expr.CmpOpEq, anyBridge), verdict(expr.VerdictDrop))...)
	if n.Internal {
		r.rule(in, verdict(expr.VerdictDrop))
	}
	// Entering the bridge from elsewhere: never from another berth bridge;
	// replies to the containers' own connections, and connections to a
	// published port translated in the kernel (portnat.go), from outside
	// or from a container (hairpin). The userspace proxy connects from the
	// host itself and so does not pass this hook.
	if !n.Internal {
		r.rule(out, append(ctDNAT(), verdict(expr.VerdictAccept))...)
	}
	r.rule(out, append(ifIs(expr.MetaKeyIIFNAME, expr.CmpOpEq, anyBridge), verdict(expr.VerdictDrop))...)
	if !n.Internal {
		r.rule(out, append(ctEstablished(), verdict(expr.VerdictAccept))...)
	}
	r.rule(out, verdict(expr.VerdictDrop))
	if err := r.c.SetAddElements(r.maps["fwd_in"], element(br, in.Name)); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := r.c.SetAddElements(r.maps["fwd_out"], element(br, out.Name)); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if !n.Internal {
		r.rule(nat, append(ifIs(expr.MetaKeyOIFNAME, expr.CmpOpNeq, ifname(br)), &expr.Masq{})...)
		if err := r.c.SetAddElements(r.maps["nat_in"], element(br, nat.Name)); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
	}
	return r.flush("rules of " + br)
}

// removeNAT removes a network's chains and map elements, and the table
// once no network uses it. Deleting what does not exist fails the whole
// batch, so each object is first added, a no-op when it exists, then
// deleted, all in one batch: there is no "not found" to tell apart from a
// real failure.
func removeNAT(_ context.Context, bridge string) error {
	r, err := newNFTRules()
	if err != nil {
		return err
	}
	r.baseChains()
	chains := map[string]*nftables.Chain{}
	for _, m := range []struct{ set, chain string }{{"fwd_in", "in-"}, {"fwd_out", "out-"}, {"nat_in", "nat-"}} {
		ch := r.chain(m.chain + bridge)
		chains[m.set] = ch
		if err := r.c.SetAddElements(r.maps[m.set], element(bridge, ch.Name)); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		if err := r.c.SetDeleteElements(r.maps[m.set], element(bridge, ch.Name)); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
	}
	for _, ch := range chains {
		r.c.FlushChain(ch)
		r.c.DelChain(ch)
	}
	if err := r.flush("removing rules of " + bridge); err != nil {
		return err
	}
	return removeNATTable()
}

// removeNATTable deletes the table once no network's chain is left in it.
// The check reads the kernel rather than our state: another state
// directory (another --run-root) may have networks in the same table.
func removeNATTable() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("nftables: listing chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == nftTable && ch.Name != "forward" && ch.Name != "postrouting" {
			return nil
		}
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable})
	if err := c.Flush(); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // removed by another state directory meanwhile
		}
		return fmt.Errorf("nftables: removing table %s: %w", nftTable, err)
	}
	return nil
}

// anyBridge matches every berth bridge: an interface name compared on its
// prefix only, as nft does for "brb-*".
var anyBridge = []byte(bridgePrefix)

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes,
// NUL padded, so that the comparison is exact.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// loadIf loads the input or output interface name into register 1.
func loadIf(key expr.MetaKey) expr.Any {
	return &expr.Meta{Key: key, Register: 1}
}

// ifIs compares the input or output interface name.
func ifIs(key expr.MetaKey, op expr.CmpOp, name []byte) []expr.Any {
	return []expr.Any{loadIf(key), &expr.Cmp{Op: op, Register: 1, Data: name}}
}

// vmap jumps to the verdict the map holds for the loaded name, if any.
func vmap(s *nftables.Set) expr.Any {
	return &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, IsDestRegSet: true, DestRegister: 0}
}

func verdict(k expr.VerdictKind) expr.Any {
	return &expr.Verdict{Kind: k}
}

// ctEstablished matches "ct state established,related".
func ctEstablished() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{
			SourceRegister: 1,
			DestRegister:   1,
			Len:            4,
			Mask:           binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:            binaryutil.NativeEndian.PutUint32(0),
		},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}
