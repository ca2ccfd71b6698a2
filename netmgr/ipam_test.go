package netmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func TestIPAMAllocate(t *testing.T) {
	n := &Network{
		Name:    "n",
		Subnet:  netip.MustParsePrefix("10.1.0.0/29"),
		Gateway: netip.MustParseAddr("10.1.0.1"),
	}
	a := newIPAM(n)
	var got []string
	for i := range 5 {
		ip, err := a.allocate(fmt.Sprint(i), netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip.String())
	}
	if want := []string{"10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := a.allocate("x", netip.Addr{}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("full: %v", err)
	}
	// Freed addresses come back only after the cursor wraps.
	delete(a.used, netip.MustParseAddr("10.1.0.3"))
	if ip, _ := a.allocate("x", netip.Addr{}); ip.String() != "10.1.0.3" {
		t.Fatalf("after free: %s", ip)
	}

	for _, c := range []struct {
		name string
		want string
		err  error
	}{
		{"free", "10.1.0.4", nil},
		{"gateway", "10.1.0.1", ErrConflict},
		{"network address", "10.1.0.0", ErrConflict},
		{"broadcast", "10.1.0.7", ErrConflict},
		{"outside", "10.2.0.4", ErrInvalid},
		{"ipv6", "fd00::4", ErrInvalid},
		{"held by another", "10.1.0.2", ErrConflict},
		{"held by itself", "10.1.0.5", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := &Network{Name: "n", Subnet: netip.MustParsePrefix("10.1.0.0/29"), Gateway: netip.MustParseAddr("10.1.0.1"),
				Endpoints: []Endpoint{
					{ContainerID: "other", Address: netip.MustParsePrefix("10.1.0.2/29")},
					{ContainerID: "me", Address: netip.MustParsePrefix("10.1.0.5/29")},
				}}
			ip, err := newIPAM(n).allocate("me", netip.MustParseAddr(c.want))
			if !errors.Is(err, c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			var ae *AddressError
			if c.err != nil && !errors.As(err, &ae) {
				t.Fatalf("err %T, want *AddressError", err)
			}
			if c.err == nil && ip.String() != c.want {
				t.Fatalf("got %s", ip)
			}
		})
	}

	// An ip_range narrows dynamic allocation.
	n = &Network{Name: "n", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1"), IPRange: netip.MustParsePrefix("10.1.0.128/30")}
	a = newIPAM(n)
	got = nil
	for {
		ip, err := a.allocate("c", netip.Addr{})
		if err != nil {
			break
		}
		got = append(got, ip.String())
	}
	if want := []string{"10.1.0.128", "10.1.0.129", "10.1.0.130", "10.1.0.131"}; !slices.Equal(got, want) {
		t.Fatalf("range: got %v, want %v", got, want)
	}
}

func TestCheckSubnet(t *testing.T) {
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	for _, c := range []struct {
		subnet netip.Prefix
		gw     netip.Addr
		rng    netip.Prefix
		ok     bool
	}{
		{p("10.0.0.0/24"), a("10.0.0.1"), netip.Prefix{}, true},
		{p("10.0.0.0/24"), a("10.0.0.254"), p("10.0.0.128/25"), true},
		{p("10.0.0.0/31"), a("10.0.0.1"), netip.Prefix{}, false},
		{p("10.0.0.1/24"), a("10.0.0.1"), netip.Prefix{}, false},
		{p("10.0.0.0/24"), a("10.0.1.1"), netip.Prefix{}, false},
		{p("10.0.0.0/24"), a("10.0.0.255"), netip.Prefix{}, false},
		{p("10.0.0.0/24"), a("10.0.0.1"), p("10.0.1.0/25"), false},
		{p("fd00::/64"), a("fd00::1"), netip.Prefix{}, false},
	} {
		if err := checkSubnet(c.subnet, c.gw, c.rng); (err == nil) != c.ok {
			t.Errorf("%s gw %s range %s: %v", c.subnet, c.gw, c.rng, err)
		}
	}
}

func TestPickSubnet(t *testing.T) {
	pool := DefaultPool()
	if len(pool) != 15+16 || pool[0].String() != "172.17.0.0/16" || pool[15].String() != "192.168.0.0/20" || pool[30].String() != "192.168.240.0/20" {
		t.Fatalf("pool %v", pool)
	}
	taken := []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.1.0/24")}
	got, err := pickSubnet(pool, taken)
	if err != nil || got.String() != "192.168.16.0/20" {
		t.Fatalf("got %s %v", got, err)
	}
}

// listKernel returns the berth links and the number of rules and map
// elements of the berth table in the sandbox.
func listKernel(t *testing.T) (links []string, rules int) {
	t.Helper()
	all, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range all {
		if n := l.Attrs().Name; strings.HasPrefix(n, bridgePrefix) || strings.HasPrefix(n, "vb") {
			links = append(links, n)
		}
	}
	return links, nftObjects(t)
}

// TestCycles runs 200 create/attach/detach/remove cycles next to a
// long-lived network whose endpoints come and go, and checks that no
// address is ever held twice and nothing leaks.
func TestCycles(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m, dir := newManager(t)
	stable := ensure(t, m, NetworkSpec{Name: "stable", Project: "p", Subnet: netip.MustParsePrefix("10.88.0.0/26")})
	removeNet(t, m, stable.Name)
	baseLinks, baseRules := listKernel(t)

	const cycles, window = 200, 8
	var nss []string
	for i := range window {
		nss = append(nss, newNS(t, dir, fmt.Sprint("w", i)))
	}
	held := map[netip.Addr]string{}
	var live []string
	seen := 0
	for i := range cycles {
		// The churning network.
		churn := ensure(t, m, NetworkSpec{Name: "churn", Project: "p"})
		ns := nss[i%window]
		id := fmt.Sprint("c", i)
		if len(live) == window {
			old := live[0]
			live = live[1:]
			ep, _ := m.Endpoints(old)
			if err := m.Detach(ctx, old, stable.Name); err != nil {
				t.Fatal(err)
			}
			delete(held, ep[0].IP())
		}
		ep, err := m.Attach(ctx, AttachSpec{Network: stable.Name, ContainerID: id, NetNSPath: ns, IfName: "eth0"})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if other, dup := held[ep.IP()]; dup {
			t.Fatalf("cycle %d: %s given to %s while %s holds it", i, ep.IP(), id, other)
		}
		held[ep.IP()] = id
		live = append(live, id)
		seen++
		cep, err := m.Attach(ctx, AttachSpec{Network: churn.Name, ContainerID: id, NetNSPath: ns, IfName: "eth1"})
		if err != nil {
			t.Fatalf("cycle %d: churn attach: %v", i, err)
		}
		if !churn.Subnet.Contains(cep.IP()) {
			t.Fatalf("churn address %s outside %s", cep.IP(), churn.Subnet)
		}
		if err := m.Detach(ctx, id, churn.Name); err != nil {
			t.Fatal(err)
		}
		if err := m.RemoveNetwork(ctx, churn.Name); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		// Each container holds exactly one interface, in its namespace.
		if n, _ := m.Network(stable.Name); len(n.Endpoints) != len(live) {
			t.Fatalf("cycle %d: %d endpoints recorded, %d live", i, len(n.Endpoints), len(live))
		}
	}
	for _, id := range live {
		if err := m.Detach(ctx, id, stable.Name); err != nil {
			t.Fatal(err)
		}
	}
	links, rules := listKernel(t)
	if !slices.Equal(links, baseLinks) || rules != baseRules {
		t.Fatalf("after %d cycles: links %v rules %d, want %v and %d", cycles, links, rules, baseLinks, baseRules)
	}
	if n, _ := m.Network(stable.Name); len(n.Endpoints) != 0 {
		t.Fatalf("endpoints left: %v", n.Endpoints)
	}
	t.Logf("%d cycles; stable network's addresses went round a /26 %d times", cycles, seen/61)
}

// TestConcurrentAttach allocates from two Managers (as two berth processes
// would) at once.
func TestConcurrentAttach(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m1, dir := newManager(t)
	n := ensure(t, m1, NetworkSpec{Name: "busy", Project: "p"})
	removeNet(t, m1, n.Name)
	m2, _ := New(m1.Dir())
	const per = 12
	var mu sync.Mutex
	ips := map[netip.Addr]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*per)
	for g, m := range []*Manager{m1, m2} {
		ns := newNS(t, dir, fmt.Sprint("g", g))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				id := fmt.Sprintf("g%d-%d", g, i)
				ep, err := m.Attach(ctx, AttachSpec{Network: n.Name, ContainerID: id, NetNSPath: ns, IfName: fmt.Sprint("eth", i)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if other, dup := ips[ep.IP()]; dup {
					errs <- fmt.Errorf("%s given to %s and %s", ep.IP(), other, id)
				}
				ips[ep.IP()] = id
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, _ := m1.Network(n.Name)
	if len(got.Endpoints) != 2*per || len(ips) != 2*per {
		t.Fatalf("%d endpoints recorded, %d addresses, want %d", len(got.Endpoints), len(ips), 2*per)
	}
	for _, ep := range got.Endpoints {
		if err := m1.Detach(ctx, ep.ContainerID, n.Name); err != nil {
			t.Error(err)
		}
	}
}

// TestAttachTime measures attach and detach of one container, median of 50.
func TestAttachTime(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m, dir := newManager(t)
	n := ensure(t, m, NetworkSpec{Name: "timed", Project: "p"})
	removeNet(t, m, n.Name)
	const runs = 50
	var nss []string
	for i := range runs {
		nss = append(nss, newNS(t, dir, fmt.Sprint("t", i)))
	}
	var att, det, mk []time.Duration
	for i := range runs {
		start := time.Now()
		p := filepath.Join(dir, fmt.Sprint("fresh", i))
		if err := NewNetNS(p); err != nil {
			t.Fatal(err)
		}
		mk = append(mk, time.Since(start))
		RemoveNetNS(p)
		start = time.Now()
		if _, err := m.Attach(ctx, AttachSpec{Network: n.Name, ContainerID: fmt.Sprint(i), NetNSPath: nss[i], DefaultRoute: true, Names: []string{"x"}}); err != nil {
			t.Fatal(err)
		}
		att = append(att, time.Since(start))
	}
	for i := range runs {
		start := time.Now()
		if err := m.Detach(ctx, fmt.Sprint(i), n.Name); err != nil {
			t.Fatal(err)
		}
		det = append(det, time.Since(start))
	}
	med := func(d []time.Duration) string {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return fmt.Sprintf("median %v (min %v, p90 %v)", d[len(d)/2].Round(10*time.Microsecond), d[0].Round(10*time.Microsecond), d[len(d)*9/10].Round(10*time.Microsecond))
	}
	t.Logf("NewNetNS: %s", med(mk))
	t.Logf("Attach:   %s", med(att))
	t.Logf("Detach:   %s", med(det))
}

// TestConcurrentAttachProcesses allocates from two processes at once, as
// two projects' supervisors would on a shared network. The children are
// this test binary, run in the same sandbox.
func TestConcurrentAttachProcesses(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m, dir := newManager(t)
	n := ensure(t, m, NetworkSpec{Name: "shared", Project: "p"})
	removeNet(t, m, n.Name)
	const per = 10
	var cmds []*exec.Cmd
	for p := range 2 {
		ns := newNS(t, dir, fmt.Sprint("proc", p))
		cmd := exec.Command("/proc/self/exe", "-test.run=^TestHelperAttach$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%s|p%d|%d", helperEnv, m.Dir(), n.Name, ns, p, per))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("helper %d:\n%s", p, out.String())
			}
		})
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	}
	got, err := m.Network(n.Name)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	for _, ep := range got.Endpoints {
		if other, dup := seen[ep.IP()]; dup {
			t.Errorf("%s held by %s and %s", ep.IP(), other, ep.ContainerID)
		}
		seen[ep.IP()] = ep.ContainerID
	}
	if len(got.Endpoints) != 2*per {
		t.Errorf("%d endpoints, want %d", len(got.Endpoints), 2*per)
	}
	for _, ep := range got.Endpoints {
		if err := m.Detach(ctx, ep.ContainerID, n.Name); err != nil {
			t.Error(err)
		}
	}
}

const helperEnv = "BERTH_NETMGR_HELPER"

// TestHelperAttach is TestConcurrentAttachProcesses' child; it does
// nothing in a normal run.
func TestHelperAttach(t *testing.T) {
	arg := os.Getenv(helperEnv)
	if arg == "" {
		t.Skip("helper process only")
	}
	f := strings.Split(arg, "|")
	m, err := New(f[0])
	if err != nil {
		t.Fatal(err)
	}
	var per int
	fmt.Sscan(f[4], &per)
	for i := range per {
		_, err := m.Attach(context.Background(), AttachSpec{Network: f[1], ContainerID: fmt.Sprintf("%s-%d", f[3], i), NetNSPath: f[2], IfName: fmt.Sprint("eth", i)})
		if err != nil {
			t.Fatal(err)
		}
	}
}
