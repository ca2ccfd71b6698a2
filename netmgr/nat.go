package netmgr

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
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
// Every change is one `nft -f` transaction: it applies whole or not at all.
const nftTable = "berth"

// nftCommand is the nft binary; a variable so tests can point elsewhere.
var nftCommand = "nft"

const nftSkeleton = `add table ip berth
add map ip berth fwd_in { type ifname : verdict; }
add map ip berth fwd_out { type ifname : verdict; }
add map ip berth nat_in { type ifname : verdict; }
add chain ip berth forward { type filter hook forward priority filter; policy accept; }
add chain ip berth postrouting { type nat hook postrouting priority srcnat; policy accept; }
`

// ensureNAT installs (or reinstalls) a network's rules. The base chains are
// flushed and refilled in the same transaction, so running it again never
// duplicates a rule.
func ensureNAT(ctx context.Context, n *Network) error {
	br := n.Bridge
	var b strings.Builder
	b.WriteString(nftSkeleton)
	b.WriteString(`flush chain ip berth forward
flush chain ip berth postrouting
add rule ip berth forward iifname vmap @fwd_in
add rule ip berth forward oifname vmap @fwd_out
add rule ip berth postrouting iifname vmap @nat_in
`)
	for _, c := range []string{"in-", "out-", "nat-"} {
		fmt.Fprintf(&b, "add chain ip berth %s%s\nflush chain ip berth %[1]s%[2]s\n", c, br)
	}
	// Leaving the bridge: to the same bridge is fine (seen only with
	// br_netfilter), to another berth bridge never, out of the host only
	// when not internal.
	fmt.Fprintf(&b, "add rule ip berth in-%s oifname %q accept\n", br, br)
	fmt.Fprintf(&b, "add rule ip berth in-%s oifname %q drop\n", br, bridgePrefix+"*")
	if n.Internal {
		fmt.Fprintf(&b, "add rule ip berth in-%s drop\n", br)
	}
	// Entering the bridge from elsewhere: never from another berth bridge;
	// replies to the containers' own connections only. Published ports go
	// through the userspace proxy, which connects from the host itself and
	// so does not pass this hook.
	fmt.Fprintf(&b, "add rule ip berth out-%s iifname %q drop\n", br, bridgePrefix+"*")
	if !n.Internal {
		fmt.Fprintf(&b, "add rule ip berth out-%s ct state established,related accept\n", br)
	}
	fmt.Fprintf(&b, "add rule ip berth out-%s drop\n", br)
	fmt.Fprintf(&b, "add element ip berth fwd_in { %q : jump in-%s }\n", br, br)
	fmt.Fprintf(&b, "add element ip berth fwd_out { %q : jump out-%s }\n", br, br)
	if !n.Internal {
		fmt.Fprintf(&b, "add rule ip berth nat-%s oifname != %q masquerade\n", br, br)
		fmt.Fprintf(&b, "add element ip berth nat_in { %q : jump nat-%s }\n", br, br)
	}
	return runNFT(ctx, b.String())
}

// removeNAT removes a network's chains and map elements, and the table
// once no network uses it. Deleting what does not exist fails in nft 1.0.6
// (no "destroy" yet), so each object is first added, a no-op when it
// exists, then deleted, all in one transaction.
func removeNAT(ctx context.Context, bridge string) error {
	var b strings.Builder
	b.WriteString(nftSkeleton)
	for _, c := range []string{"in-", "out-", "nat-"} {
		fmt.Fprintf(&b, "add chain ip berth %s%s\n", c, bridge)
	}
	for _, m := range []struct{ set, chain string }{{"fwd_in", "in-"}, {"fwd_out", "out-"}, {"nat_in", "nat-"}} {
		fmt.Fprintf(&b, "add element ip berth %s { %q : jump %s%s }\n", m.set, bridge, m.chain, bridge)
		fmt.Fprintf(&b, "delete element ip berth %s { %q }\n", m.set, bridge)
	}
	for _, c := range []string{"in-", "out-", "nat-"} {
		fmt.Fprintf(&b, "flush chain ip berth %s%s\ndelete chain ip berth %[1]s%[2]s\n", c, bridge)
	}
	if err := runNFT(ctx, b.String()); err != nil {
		return err
	}
	// The table goes with the last network's chains. The check reads the
	// kernel rather than our state: another state directory (another
	// --run-root) may have networks in the same table.
	out, err := nftOutput(ctx, "list", "table", "ip", nftTable)
	if err != nil {
		return nil // gone already
	}
	if strings.Contains(out, "jump ") {
		return nil
	}
	return runNFT(ctx, "add table ip berth\ndelete table ip berth\n")
}

func nftOutput(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, nftCommand, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func runNFT(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, nftCommand, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}
