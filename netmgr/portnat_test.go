package netmgr

import (
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// fakeBatch records what buildPortTable adds.
type fakeBatch struct {
	chains []string
	rules  map[string][][]expr.Any // by chain
	sets   map[string][]nftables.SetElement
}

func (f *fakeBatch) AddChain(c *nftables.Chain) *nftables.Chain {
	f.chains = append(f.chains, c.Name)
	return c
}

func (f *fakeBatch) AddRule(r *nftables.Rule) *nftables.Rule {
	f.rules[r.Chain.Name] = append(f.rules[r.Chain.Name], r.Exprs)
	return r
}

func (f *fakeBatch) AddSet(s *nftables.Set, e []nftables.SetElement) error {
	f.sets[s.Name] = e
	return nil
}

func TestBuildPortTable(t *testing.T) {
	b1, b2 := netip.MustParseAddr("172.17.0.2"), netip.MustParseAddr("172.17.0.3")
	for _, tc := range []struct {
		name  string
		ports []PublishedPort
		rules int // DNAT rules in prerouting and in output each
		sets  map[string]int
		mod   []uint32
		local bool // matched on "fib daddr type local"
		masq  int  // masquerade rules: loopback, bridges, one per backend
	}{
		{"two replicas on every address", []PublishedPort{{Protocol: "tcp", HostPort: 8080, Target: 80, Backends: []netip.Addr{b1, b2}}},
			1, map[string]int{"backends_0": 2}, []uint32{2}, true, 4},
		{"one address", []PublishedPort{{Protocol: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 53, Target: 53, Backends: []netip.Addr{b1}}},
			1, map[string]int{"backends_0": 1}, []uint32{1}, false, 3},
		{"no backend: no rule", []PublishedPort{{Protocol: "tcp", HostPort: 8080, Target: 80},
			{Protocol: "tcp", HostPort: 8081, Target: 80, Backends: []netip.Addr{b2}}},
			1, map[string]int{"backends_1": 1}, []uint32{1}, true, 3},
		{"a backend of two ports", []PublishedPort{{Protocol: "tcp", HostPort: 8080, Target: 80, Backends: []netip.Addr{b1, b2}},
			{Protocol: "udp", HostPort: 8080, Target: 80, Backends: []netip.Addr{b2}}},
			2, map[string]int{"backends_0": 2, "backends_1": 1}, []uint32{2, 1}, true, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeBatch{rules: map[string][][]expr.Any{}, sets: map[string][]nftables.SetElement{}}
			if err := buildPortTable(f, &nftables.Table{Name: "t"}, tc.ports); err != nil {
				t.Fatal(err)
			}
			if len(f.rules["prerouting"]) != tc.rules || len(f.rules["output"]) != tc.rules {
				t.Errorf("DNAT rules: prerouting %d, output %d, want %d", len(f.rules["prerouting"]), len(f.rules["output"]), tc.rules)
			}
			if len(f.rules["postrouting"]) != tc.masq {
				t.Errorf("masquerade rules: %d, want %d", len(f.rules["postrouting"]), tc.masq)
			}
			if len(f.sets) != len(tc.sets) {
				t.Errorf("maps %v, want %v", f.sets, tc.sets)
			}
			for name, n := range tc.sets {
				if len(f.sets[name]) != n {
					t.Errorf("map %s has %d elements, want %d", name, len(f.sets[name]), n)
				}
			}
			for i, r := range f.rules["prerouting"] {
				var mod uint32
				var local, dnat bool
				for _, e := range r {
					switch e := e.(type) {
					case *expr.Numgen:
						mod = e.Modulus
					case *expr.Fib:
						local = true
					case *expr.NAT:
						dnat = e.Type == expr.NATTypeDestNAT && e.RegAddrMin == 1 && e.RegProtoMin == 2
					}
				}
				if mod != tc.mod[i] || local != tc.local || !dnat {
					t.Errorf("rule %d: numgen mod %d (want %d), fib %v (want %v), dnat %v", i, mod, tc.mod[i], local, tc.local, dnat)
				}
			}
		})
	}
}

func TestBuildPortTableRefuses(t *testing.T) {
	for _, p := range []PublishedPort{
		{Protocol: "sctp", HostPort: 1, Target: 1, Backends: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		{Protocol: "tcp", HostIP: netip.MustParseAddr("::1"), HostPort: 1, Target: 1, Backends: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		{Protocol: "tcp", HostPort: 1, Target: 1, Backends: []netip.Addr{netip.MustParseAddr("fd00::1")}},
	} {
		f := &fakeBatch{rules: map[string][][]expr.Any{}, sets: map[string][]nftables.SetElement{}}
		if err := buildPortTable(f, &nftables.Table{Name: "t"}, []PublishedPort{p}); err == nil {
			t.Errorf("%+v: accepted", p)
		}
	}
}

// TestPublishedPortsTable writes the table, rewrites it with other
// backends (a map element with a new value must not fail the batch), and
// removes it twice.
func TestPublishedPortsTable(t *testing.T) {
	needSandbox(t)
	const table = PortTablePrefix + "test"
	a, b := netip.MustParseAddr("172.17.0.2"), netip.MustParseAddr("172.17.0.3")
	for _, backends := range [][]netip.Addr{{a}, {b, a}, {b}, nil} {
		ports := []PublishedPort{{Protocol: "tcp", HostPort: 8080, Target: 80, Backends: backends}}
		if err := SetPublishedPorts(table, ports); err != nil {
			t.Fatalf("backends %v: %v", backends, err)
		}
	}
	for range 2 {
		if err := RemovePublishedPorts(table); err != nil {
			t.Fatal(err)
		}
	}
	if err := KernelNATAvailable(); err != nil {
		t.Fatal(err)
	}
}
