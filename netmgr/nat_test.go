package netmgr

import (
	"context"
	"testing"
)

// TestNATRuleset checks the kernel's view of one network's rules: how many
// objects each kind of network adds, that installing twice adds nothing,
// and that removal (also of what is already gone) leaves no table.
func TestNATRuleset(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		internal bool
		// 3 dispatch rules in the base chains, then per network: in- and
		// out- rules, nat- rules, one element per map used.
		want int
	}{
		{"routed", false, 3 + 3 + 4 + 1 + 3},
		{"internal", true, 3 + 3 + 2 + 0 + 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &Network{Name: tc.name, Bridge: bridgeName(tc.name, 0), Internal: tc.internal}
			for range 2 {
				if err := ensureNAT(ctx, n); err != nil {
					t.Fatal(err)
				}
				if got := nftObjects(t); got != tc.want {
					t.Fatalf("got %d rules and elements, want %d", got, tc.want)
				}
			}
			for range 2 {
				if err := removeNAT(ctx, n.Bridge); err != nil {
					t.Fatal(err)
				}
				if got := nftObjects(t); got != 0 {
					t.Fatalf("left %d rules and elements", got)
				}
			}
		})
	}
}
