package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/google/nftables"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/netmgr"
	"github.com/berthrun/berth/tests/harness"
)

// portTables lists the tables of published ports in the sandbox.
func portTables(t *testing.T) []string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, "berth_ports_") {
			out = append(out, tb.Name)
		}
	}
	return out
}

// TestKernelPorts: with BERTH_PROXY=kernel a port published on every
// address is served by DNAT, from the host's loopback and from a container
// (hairpin, through the bridge's gateway address), and `down` removes the
// table.
func TestKernelPorts(t *testing.T) {
	e := harness.New(t)
	e.Environ = append(e.Environ, "BERTH_PROXY=kernel")
	e.LoadImage("busybox:latest")
	port := freePort(t)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: kports
services:
  web:
    image: busybox
    command: %s
    init: true
    ports: ["%d:80"]
  probe:
    image: busybox
    command: ["sleep", "3600"]
    init: true
`, webCommand, port))
	e.MustRun("up", "-d", "--scale", "web=2")
	// The supervisor points the port at the replicas as they start.
	waitFor(t, 10*time.Second, "the table of published ports", func() bool { return len(portTables(t)) == 1 })
	names := hostnames(t, e, "web")
	// A replica's server may start later than the other's: ask until both
	// have answered.
	seen := map[string]bool{}
	waitFor(t, 15*time.Second, "both replicas to answer on 127.0.0.1", func() bool {
		if body, err := get(t, port); err == nil {
			seen[names[strings.TrimSpace(body)]] = true
		}
		return len(seen) == 2
	})
	if ps := e.MustRun("ps").Stdout; !strings.Contains(ps, fmt.Sprintf("0.0.0.0:%d->80/tcp", port)) {
		t.Errorf("ps PORTS:\n%s", ps)
	}

	// Hairpin: a container reaches the published port through its gateway.
	script := fmt.Sprintf(`gw=$(ip route | awk '/^default/ {print $3}'); printf "GET / HTTP/1.0\r\n\r\n" | nc -w 5 $gw %d`, port)
	r := e.Run("exec", "-T", "probe", "sh", "-c", script)
	_, body, _ := strings.Cut(r.Stdout, "\r\n\r\n")
	if r.Code != 0 || names[strings.TrimSpace(body)] == "" {
		t.Errorf("hairpin through the gateway: exit %d, %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}

	e.MustRun("down", "-t", "1")
	if tables := portTables(t); len(tables) != 0 {
		t.Errorf("tables left after down: %v", tables)
	}
	if _, err := get(t, port); err == nil {
		t.Error("the port still answers after down")
	}
}

// TestKernelPortsDrain: a replica scaled away keeps the connections that
// conntrack sent to it, and its stop waits for them to end, not for the
// whole grace period.
func TestKernelPortsDrain(t *testing.T) {
	e := harness.New(t)
	e.Environ = append(e.Environ, "BERTH_PROXY=kernel")
	e.LoadImage("holdsrv:latest", testimage.WithEntries(testimage.Entry{Name: "holdsrv", Mode: 0o755, Body: harness.BuildStatic(t, "./testdata/holdsrv")}))
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: kdrain
services:
  web:
    image: holdsrv
    command: ["/holdsrv"]
    stop_grace_period: 30s
    ports: ["127.0.0.1:%d:80"]
`, port))
	e.MustRun("up", "-d", "--scale", "web=2")
	defer e.Run("down", "-t", "1")
	// Two connections in a row go to both replicas (numgen counts on), once
	// both answer.
	var conns []net.Conn
	waitFor(t, 15*time.Second, "two connections through the port", func() bool {
		c, err := greeted(addr, time.Second)
		if err == nil {
			conns = append(conns, c)
		}
		return len(conns) == 2
	})
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	scale := e.Command("scale", "web=1")
	if err := scale.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- scale.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("scale ended while a connection to the leaving replica was open: %v", err)
	case <-time.After(2 * time.Second):
	}
	for i, c := range conns {
		if _, err := c.Write([]byte("still here\n")); err != nil {
			t.Errorf("connection %d after the scale began: %v", i, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var buf [1]byte
		if _, err := c.Read(buf[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("connection %d after the scale began: read %v, want it still open", i, err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("scale web=1: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("scale still draining 15 s after the connections closed (grace is 30 s)")
	}
	if n := len(ps(t, e, "web")); n != 1 {
		t.Errorf("%d replicas after scale web=1", n)
	}
}

// TestKernelPortsFallback: a port the kernel path cannot serve (an IPv6
// host address) goes through the userspace proxy, with a line in the
// supervisor's log, next to a port served in the kernel.
func TestKernelPortsFallback(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("the sandbox has no ::1: %v", err)
	}
	port6 := l.Addr().(*net.TCPAddr).Port
	l.Close()
	port := freePort(t)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: kfallback
services:
  web:
    image: busybox
    command: %s
    init: true
    ports: ["127.0.0.1:%d:80", "[::1]:%d:80"]
`, webCommand, port, port6))
	e.MustRun("up", "-d")
	if body, err := getReady(t, port); err != nil || strings.TrimSpace(body) == "" {
		t.Fatalf("127.0.0.1:%d: %q, %v", port, body, err)
	}
	waitFor(t, 10*time.Second, "an answer on [::1]", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("[::1]:%d", port6), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
		var buf [12]byte
		n, _ := c.Read(buf[:])
		return strings.HasPrefix(string(buf[:n]), "HTTP/1")
	})
	logs, _ := filepath.Glob(filepath.Join(e.RunRoot, "*", "*", "supervisor.log"))
	more, _ := filepath.Glob(filepath.Join(e.RunRoot, "*", "supervisor.log"))
	var all []byte
	for _, f := range append(logs, more...) {
		b, _ := os.ReadFile(f)
		all = append(all, b...)
	}
	if !strings.Contains(string(all), "through the userspace proxy: host address ::1 is not IPv4") {
		t.Errorf("no fallback line in the supervisor's log:\n%s", all)
	}
	if n := len(portTables(t)); n != 1 {
		t.Errorf("%d tables of published ports, want 1 (for 127.0.0.1)", n)
	}
	e.MustRun("down", "-t", "1")
}

// TestKernelPortsUDPMoves: a UDP flow whose replica is scaled away moves to
// one that is left, although its client keeps sending from the same port
// (conntrack would otherwise keep translating it to the old replica).
func TestKernelPortsUDPMoves(t *testing.T) {
	e := harness.New(t)
	e.Environ = append(e.Environ, "BERTH_PROXY=kernel")
	e.LoadImage("udpecho:latest", testimage.WithEntries(testimage.Entry{Name: "udpecho", Mode: 0o755, Body: harness.BuildStatic(t, "./testdata/udpecho")}))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: kudp
services:
  sink:
    image: udpecho
    command: ["/udpecho"]
    ports: ["127.0.0.1:%d:9000/udp"]
`, port))
	e.MustRun("up", "-d", "--scale", "sink=2")
	defer e.Run("down", "-t", "1")
	ask := func(c net.Conn) string {
		_, _ = c.Write([]byte("whoami"))
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}
	// Two client flows, one on each replica.
	var flows []net.Conn
	seen := map[string]bool{}
	waitFor(t, 15*time.Second, "a flow to each replica", func() bool {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		if h := ask(c); h != "" && !seen[h] {
			seen[h] = true
			flows = append(flows, c)
		} else {
			c.Close()
		}
		return len(flows) == 2
	})
	defer func() {
		for _, c := range flows {
			c.Close()
		}
	}()
	e.MustRun("scale", "sink=1")
	var left string
	waitFor(t, 10*time.Second, "the replica left to answer a new flow", func() bool {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		left = ask(c)
		return left != ""
	})
	// Both flows, the scaled-away replica's included, end on it.
	for i, c := range flows {
		waitFor(t, 10*time.Second, fmt.Sprintf("flow %d to reach %s", i, left), func() bool { return ask(c) == left })
	}
}

// berthNft lists every nftables object of berth in the sandbox: tables
// whose name holds "berth", and the chains and sets (maps included) in
// them or named for berth in any other table.
func berthNft(t *testing.T) []string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	ours := func(name string) bool { return strings.Contains(name, "berth") || strings.HasPrefix(name, "brb-") }
	var out []string
	for _, tb := range tables {
		if ours(tb.Name) {
			out = append(out, "table "+tb.Name)
		}
		sets, err := c.GetSets(tb)
		if err != nil {
			t.Fatalf("sets of %s: %v", tb.Name, err)
		}
		for _, s := range sets {
			if ours(tb.Name) || ours(s.Name) {
				out = append(out, fmt.Sprintf("set %s %s", tb.Name, s.Name))
			}
		}
	}
	chains, err := c.ListChains()
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chains {
		if ours(ch.Table.Name) || ours(ch.Name) {
			out = append(out, fmt.Sprintf("chain %s %s", ch.Table.Name, ch.Name))
		}
	}
	return out
}

// portBackends returns the addresses in the backend maps of the tables of
// published ports: where the kernel sends new connections.
func portBackends(t *testing.T) []netip.Addr {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, tb := range tables {
		if !strings.HasPrefix(tb.Name, "berth_ports_") {
			continue
		}
		sets, err := c.GetSets(tb)
		if err != nil {
			t.Fatalf("sets of %s: %v", tb.Name, err)
		}
		for _, s := range sets {
			if !s.IsMap || !strings.HasPrefix(s.Name, "backends_") {
				continue
			}
			elems, err := c.GetSetElements(s)
			if err != nil {
				t.Fatalf("elements of %s: %v", s.Name, err)
			}
			for _, el := range elems {
				if a, ok := netip.AddrFromSlice(el.Val); ok {
					out = append(out, a)
				}
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// TestKernelPortsReplicas: five replicas behind one port served in the
// kernel. Every replica answers, on 127.0.0.1 and from a replica through
// its gateway (itself included: hairpin); one whose health check fails
// leaves the kernel's map and gets no new connection until it passes
// again; scaling to two under a client loop loses no request; `down`
// leaves no nftables object of berth.
//
// It runs twice: with the BPF fast path, which takes the host's own
// connections (those on 127.0.0.1 here) off NAT, and without it
// (BERTH_PORTS_BPF=0), where nftables serves them too.
func TestKernelPortsReplicas(t *testing.T) {
	for _, bpf := range []bool{true, false} {
		name := map[bool]string{true: "bpf", false: "nft"}[bpf]
		t.Run(name, func(t *testing.T) { testKernelPortsReplicas(t, bpf) })
	}
}

func testKernelPortsReplicas(t *testing.T, bpf bool) {
	e := harness.New(t)
	e.Environ = append(e.Environ, "BERTH_PROXY=kernel")
	if !bpf {
		e.Environ = append(e.Environ, "BERTH_PORTS_BPF=0")
	}
	e.LoadImage("busybox:latest")
	preexisting := berthBPF(t)
	port := freePort(t)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: kreplicas
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && touch /tmp/healthy && exec httpd -f -p 80 -h /www"]
    init: true
    stop_grace_period: 2s
    ports: ["%d:80"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/healthy"]
      interval: 300ms
      start_interval: 100ms
      start_period: 5s
      retries: 1
`, port))
	e.MustRun("up", "-d", "--wait", "--scale", "web=5")
	defer e.Run("down", "-t", "1")
	names := hostnames(t, e, "web")  // hostname → container name
	addrs := map[string]netip.Addr{} // container name → address
	for _, p := range ps(t, e, "web") {
		idx := p.Name[strings.LastIndex(p.Name, "-")+1:]
		n, _ := strconv.Atoi(idx)
		a, err := netip.ParseAddr(e.ContainerIP("web", n))
		if err != nil {
			t.Fatalf("%s: address: %v", p.Name, err)
		}
		addrs[p.Name] = a
	}
	waitFor(t, 10*time.Second, "five backends in the kernel's map", func() bool { return len(portBackends(t)) == 5 })
	if objs := berthNft(t); !slices.ContainsFunc(objs, func(s string) bool { return strings.HasSuffix(s, " backends_0") }) {
		t.Fatalf("no backend map among berth's nftables objects: %v", objs)
	}

	// The fast path is attached for the sandbox's connections, or not.
	progs := berthBPF(t)
	for id := range preexisting {
		delete(progs, id)
	}
	if bpf && len(progs) != 2 || !bpf && len(progs) != 0 {
		t.Errorf("berth's BPF programs on the cgroup2 root: %v (bpf %v)", progs, bpf)
	}
	var maps []ebpf.MapID
	for _, m := range progs {
		maps = append(maps, m...)
	}
	// Through the fast path the socket connects over the bridge (its own
	// address is the bridge's) and getpeername still says 127.0.0.1:port;
	// through NAT both ends are on loopback.
	if !waitLocal(t, port, bpf) {
		t.Errorf("bpf %v: the connection's own address is not on the expected path", bpf)
	}

	// Round robin on the host's loopback: every replica answers.
	counts := map[string]int{}
	for i := range 50 {
		body, err := getReady(t, port)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		counts[names[strings.TrimSpace(body)]]++
	}
	t.Logf("50 requests on 127.0.0.1:%d: %v", port, counts)
	if len(counts) != 5 || counts[""] != 0 {
		t.Errorf("reached %d replicas, want 5: %v", len(counts), counts)
	}

	// Hairpin: a replica reaches the port on its gateway address, and the
	// connections go round all five, itself included.
	script := fmt.Sprintf(`gw=$(ip route | awk '/^default/ {print $3}'); for i in 1 2 3 4 5 6 7 8 9 10; do h=$(printf "GET / HTTP/1.0\r\n\r\n" | nc -w 5 $gw %d | tail -n 1); echo "${h:-failed}"; done`, port)
	r := e.Run("exec", "-T", "--index", "1", "web", "sh", "-c", script)
	inside := map[string]int{}
	for _, line := range strings.Fields(r.Stdout) {
		inside[names[line]]++
	}
	t.Logf("10 requests from kreplicas-web-1 through its gateway: %v", inside)
	if r.Code != 0 || len(inside) != 5 || inside[""] != 0 || inside["kreplicas-web-1"] == 0 {
		t.Errorf("hairpin from web-1: exit %d, answers %v, stdout %q, stderr %q", r.Code, inside, r.Stdout, r.Stderr)
	}

	// A replica whose health check fails leaves the map and gets no new
	// connection; passing again brings it back.
	sick := "kreplicas-web-3"
	health := func(want string) func() bool {
		return func() bool {
			for _, p := range ps(t, e, "web") {
				if p.Name == sick {
					return p.Health == want
				}
			}
			return false
		}
	}
	e.MustRun("exec", "-T", "--index", "3", "web", "rm", "/tmp/healthy")
	waitFor(t, 10*time.Second, sick+" to turn unhealthy", health("unhealthy"))
	waitFor(t, 10*time.Second, sick+" to leave the kernel's map", func() bool {
		b := portBackends(t)
		return len(b) == 4 && !slices.Contains(b, addrs[sick])
	})
	for i := range 20 {
		body, err := getReady(t, port)
		if err != nil {
			t.Fatalf("request %d while %s is unhealthy: %v", i, sick, err)
		}
		if names[strings.TrimSpace(body)] == sick {
			t.Fatalf("request %d reached %s, which is unhealthy", i, sick)
		}
	}
	e.MustRun("exec", "-T", "--index", "3", "web", "touch", "/tmp/healthy")
	waitFor(t, 10*time.Second, sick+" to turn healthy again", health("healthy"))
	waitFor(t, 10*time.Second, sick+" to answer again", func() bool {
		body, err := get(t, port)
		return err == nil && names[strings.TrimSpace(body)] == sick
	})

	// Scale to 2 while a client loops on the port: no request fails.
	var failures, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if body, err := get(t, port); err != nil || names[strings.TrimSpace(body)] == "" {
				failures.Add(1)
			} else {
				served.Add(1)
			}
		}
	})
	// Some requests before the scale, so that the loop is running.
	waitFor(t, 10*time.Second, "the client loop to be served", func() bool { return served.Load() >= 10 })
	e.MustRun("scale", "web=2")
	before := served.Load()
	waitFor(t, 10*time.Second, "the client loop to go on after the scale", func() bool { return served.Load() >= before+10 })
	close(stop)
	wg.Wait()
	t.Logf("scale web=2 under a client loop: %d served, %d failed", served.Load(), failures.Load())
	if failures.Load() != 0 {
		t.Errorf("%d of %d requests failed while scaling down", failures.Load(), failures.Load()+served.Load())
	}
	want := []netip.Addr{addrs["kreplicas-web-1"], addrs["kreplicas-web-2"]}
	slices.SortFunc(want, netip.Addr.Compare)
	if got := portBackends(t); !slices.Equal(got, want) {
		t.Errorf("kernel's map after scale web=2: %v, want %v", got, want)
	}

	e.MustRun("down", "-t", "1")
	if objs := berthNft(t); len(objs) != 0 {
		t.Errorf("nftables objects left after down: %v", objs)
	}
	if _, err := get(t, port); err == nil {
		t.Error("the port still answers after down")
	}
	bpfGone(t, progs, maps)
}

// berthBPF returns berth's programs attached to the cgroup2 root for
// connect4 and getpeername4, each with the maps it uses.
func berthBPF(t *testing.T) map[ebpf.ProgramID][]ebpf.MapID {
	t.Helper()
	out := map[ebpf.ProgramID][]ebpf.MapID{}
	root := netmgr.Cgroup2Mount()
	if root == "" {
		return out
	}
	dir, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	for _, at := range []ebpf.AttachType{ebpf.AttachCGroupInet4Connect, ebpf.AttachCgroupInet4GetPeername} {
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(dir.Fd()), Attach: at})
		if err != nil {
			t.Fatalf("programs on %s: %v", root, err)
		}
		for _, ap := range res.Programs {
			p, err := ebpf.NewProgramFromID(ap.ID)
			if err != nil {
				continue
			}
			info, err := p.Info()
			p.Close()
			if err != nil || info.Name != "berth_ports" {
				continue
			}
			out[ap.ID], _ = info.MapIDs()
		}
	}
	// Each is held by a bpf_link: a plain attach would outlive its
	// supervisor.
	linked := map[ebpf.ProgramID]bool{}
	for id := range bpfLinks(t) {
		linked[id] = true
	}
	for id := range out {
		if !linked[id] {
			t.Errorf("program %d is attached without a link", id)
		}
	}
	return out
}

// bpfLinks returns the program of every bpf_link on the host, by link.
func bpfLinks(t *testing.T) map[ebpf.ProgramID]link.ID {
	t.Helper()
	out := map[ebpf.ProgramID]link.ID{}
	it := new(link.Iterator)
	for it.Next() {
		if info, err := it.Link.Info(); err == nil {
			out[info.Program] = it.ID
		}
	}
	if err := it.Err(); err != nil {
		t.Fatalf("listing bpf links: %v", err)
	}
	return out
}

// bpfGone fails unless the programs and maps have been freed (the kernel
// frees them shortly after their last reference goes).
func bpfGone(t *testing.T, progs map[ebpf.ProgramID][]ebpf.MapID, maps []ebpf.MapID) {
	t.Helper()
	waitFor(t, 5*time.Second, "berth's BPF links, programs and maps to be freed after down", func() bool {
		links := bpfLinks(t)
		for id := range progs {
			if _, ok := links[id]; ok {
				return false
			}
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				p.Close()
				return false
			}
		}
		for _, id := range maps {
			if m, err := ebpf.NewMapFromID(id); err == nil {
				m.Close()
				return false
			}
		}
		return true
	})
}

// waitLocal dials 127.0.0.1:port and says whether the connection took the
// fast path (own address off loopback) when bpf, or NAT when not, with
// 127.0.0.1:port as its peer either way.
func waitLocal(t *testing.T, port int, bpf bool) bool {
	t.Helper()
	c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).IP
	peer := c.RemoteAddr().String()
	t.Logf("connection to 127.0.0.1:%d: local %s, peer %s", port, c.LocalAddr(), peer)
	if peer != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Errorf("getpeername: %s", peer)
	}
	return local.IsLoopback() != bpf
}

// TestKernelPortsBPFSupervisorKill: the fast path lives only as long as its
// supervisor. Killed, the kernel detaches and frees the programs and nftables
// alone serves the port; the next supervisor attaches them again.
func TestKernelPortsBPFSupervisorKill(t *testing.T) {
	e := harness.New(t)
	e.Environ = append(e.Environ, "BERTH_PROXY=kernel")
	e.LoadImage("busybox:latest")
	port := freePort(t)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: kbpfkill
services:
  web:
    image: busybox
    command: %s
    init: true
    ports: ["%d:80"]
`, webCommand, port))
	preexisting := berthBPF(t)
	newOnes := func() map[ebpf.ProgramID][]ebpf.MapID {
		progs := berthBPF(t)
		for id := range preexisting {
			delete(progs, id)
		}
		return progs
	}
	e.MustRun("up", "-d")
	defer e.Run("down", "-t", "1")
	if _, err := getReady(t, port); err != nil {
		t.Fatal(err)
	}
	first := newOnes()
	if len(first) != 2 || !waitLocal(t, port, true) {
		t.Fatalf("no fast path after up: programs %v", first)
	}
	var maps []ebpf.MapID
	for _, m := range first {
		maps = append(maps, m...)
	}
	// The fast path is set first, then route_localnet, then the table:
	// the kill must land after all three.
	waitFor(t, 10*time.Second, "the table to have the backend and route_localnet", func() bool {
		if len(portBackends(t)) != 1 {
			return false
		}
		files, _ := filepath.Glob("/proc/sys/net/ipv4/conf/brb-*/route_localnet")
		for _, f := range files {
			if b, err := os.ReadFile(f); err != nil || strings.TrimSpace(string(b)) != "1" {
				return false
			}
		}
		return len(files) > 0
	})

	e.KillSupervisors()
	bpfGone(t, first, maps)
	if body, err := get(t, port); err != nil || strings.TrimSpace(body) == "" {
		t.Errorf("without a supervisor, through nftables: %q, %v", body, err)
	}
	if !waitLocal(t, port, false) {
		t.Error("without a supervisor the connection did not go through NAT")
	}

	e.MustRun("ps") // starts a supervisor, which adopts the project
	waitFor(t, 10*time.Second, "the next supervisor to attach the fast path", func() bool { return len(newOnes()) == 2 })
	if _, err := getReady(t, port); err != nil || !waitLocal(t, port, true) {
		t.Errorf("after the next supervisor: %v", err)
	}
	second := newOnes()
	maps = maps[:0]
	for _, m := range second {
		maps = append(maps, m...)
	}
	e.MustRun("down", "-t", "1")
	bpfGone(t, second, maps)
}
