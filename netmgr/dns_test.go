package netmgr

import (
	"context"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeUpstream is a resolver on the sandbox's loopback that knows one name.
func fakeUpstream(t *testing.T) (addr string, queries *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	queries = new(atomic.Int32)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == "example.test." && r.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR("example.test. 300 IN A 203.0.113.7")
			m.Answer = []dns.RR{rr}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String(), queries
}

// query asks the embedded server from inside a container's namespace.
func query(t *testing.T, ns, proto, name string, qtype uint16) (*dns.Msg, time.Duration) {
	t.Helper()
	var r *dns.Msg
	var rtt time.Duration
	var err error
	inNS(t, ns, func() {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		c := &dns.Client{Net: proto, Timeout: 3 * time.Second}
		start := time.Now()
		r, _, err = c.Exchange(m, "127.0.0.11:53")
		rtt = time.Since(start)
	})
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return r, rtt
}

func answerIPs(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func TestDNS(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m, dir := newManager(t)
	front := ensure(t, m, NetworkSpec{Name: "proj_default", Project: "proj"})
	removeNet(t, m, front.Name)
	shared := ensure(t, m, NetworkSpec{Name: "shared", Project: "other"})
	removeNet(t, m, shared.Name)
	elsewhere := ensure(t, m, NetworkSpec{Name: "third_default", Project: "third"})
	removeNet(t, m, elsewhere.Name)

	clientNS := newNS(t, dir, "client")
	attach(t, m, AttachSpec{Network: front.Name, ContainerID: "client", NetNSPath: clientNS, DefaultRoute: true, Names: []string{"proj-client-1", "client"}})
	attach(t, m, AttachSpec{Network: shared.Name, ContainerID: "client", NetNSPath: clientNS, IfName: "eth1", Names: []string{"proj-client-1", "client"}})
	web1 := attach(t, m, AttachSpec{Network: front.Name, ContainerID: "web1", NetNSPath: newNS(t, dir, "web1"), Names: []string{"proj-web-1", "web", "0123456789ab"}})
	web2 := attach(t, m, AttachSpec{Network: front.Name, ContainerID: "web2", NetNSPath: newNS(t, dir, "web2"), Names: []string{"proj-web-2", "web"}})
	db := attach(t, m, AttachSpec{Network: front.Name, ContainerID: "db", NetNSPath: newNS(t, dir, "db"), Names: []string{"proj-db-1", "db"}, Aliases: []string{"database"}})
	api := attach(t, m, AttachSpec{Network: shared.Name, ContainerID: "api", NetNSPath: newNS(t, dir, "api"), Names: []string{"other-api-1", "api"}})
	attach(t, m, AttachSpec{Network: elsewhere.Name, ContainerID: "hidden", NetNSPath: newNS(t, dir, "hidden"), Names: []string{"hidden"}})

	up, upQueries := fakeUpstream(t)
	s := NewDNSServer(m, DNSConfig{Upstreams: []string{up}, Refresh: 100 * time.Millisecond})
	defer s.Close()
	start := time.Now()
	if err := s.Add(ctx, DNSContainer{ContainerID: "client", NetNSPath: clientNS}); err != nil {
		t.Fatal(err)
	}
	t.Logf("DNSServer.Add took %v", time.Since(start).Round(10*time.Microsecond))

	// Port 53 stays free for the container's own servers.
	inNS(t, clientNS, func() {
		u, err := net.ListenPacket("udp4", "0.0.0.0:53")
		if err != nil {
			t.Errorf("container cannot bind udp 0.0.0.0:53: %v", err)
		} else {
			t.Cleanup(func() { u.Close() })
		}
		l, err := net.Listen("tcp4", "0.0.0.0:53")
		if err != nil {
			t.Errorf("container cannot bind tcp 0.0.0.0:53: %v", err)
		} else {
			t.Cleanup(func() { l.Close() })
		}
	})

	// A service name: both replicas, the order rotating.
	want := []string{web1.IP().String(), web2.IP().String()}
	slices.Sort(want)
	var firsts []string
	for range 4 {
		r, _ := query(t, clientNS, "udp", "web", dns.TypeA)
		got := answerIPs(r)
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(slices.Sorted(slices.Values(got)), want) {
			t.Fatalf("web: rcode %d %v, want %v", r.Rcode, got, want)
		}
		if r.Answer[0].Header().Ttl != ownedTTL {
			t.Fatalf("TTL %d", r.Answer[0].Header().Ttl)
		}
		firsts = append(firsts, got[0])
	}
	if firsts[0] == firsts[1] || firsts[1] == firsts[2] {
		t.Fatalf("order does not rotate: first answers %v", firsts)
	}
	for _, c := range []struct {
		name string
		want []string
	}{
		{"database", []string{db.IP().String()}},        // alias
		{"proj-db-1", []string{db.IP().String()}},       // container name
		{"0123456789ab", []string{web1.IP().String()}},  // hostname
		{"DB.", []string{db.IP().String()}},             // case
		{"db.proj_default", []string{db.IP().String()}}, // <name>.<network>
		{"api", []string{api.IP().String()}},            // another project, shared network
		{"other-api-1", []string{api.IP().String()}},    // its container name
		{"api.proj_default", nil},                       // not on that network
		{"hidden", nil},                                 // on a network client is not on
		{"nosuchservice", nil},                          // owned, unknown
		{"nosuch.shared", nil},                          // under a network's name
	} {
		r, rtt := query(t, clientNS, "udp", c.name, dns.TypeA)
		got := answerIPs(r)
		if c.want == nil {
			if r.Rcode != dns.RcodeNameError || rtt > 100*time.Millisecond {
				t.Errorf("%s: rcode %s in %v, want NXDOMAIN at once", c.name, dns.RcodeToString[r.Rcode], rtt)
			}
			continue
		}
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(got, c.want) {
			t.Errorf("%s: %s %v, want %v", c.name, dns.RcodeToString[r.Rcode], got, c.want)
		}
	}
	if n := upQueries.Load(); n != 0 {
		t.Fatalf("owned names went upstream (%d queries)", n)
	}
	// AAAA for an owned name: no error, no records.
	if r, _ := query(t, clientNS, "udp", "web", dns.TypeAAAA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("AAAA web: %s %v", dns.RcodeToString[r.Rcode], r.Answer)
	}
	// TCP works too.
	if r, _ := query(t, clientNS, "tcp", "database", dns.TypeA); !slices.Equal(answerIPs(r), []string{db.IP().String()}) {
		t.Fatalf("database over TCP: %v", r)
	}
	// Reverse lookup of an endpoint address.
	rev, _ := dns.ReverseAddr(db.IP().String())
	if r, _ := query(t, clientNS, "udp", rev, dns.TypePTR); len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != "proj-db-1." {
		t.Fatalf("PTR %s: %v", rev, r)
	}

	// Anything else goes to the upstream, and its answer comes back.
	r, _ := query(t, clientNS, "udp", "example.test", dns.TypeA)
	if got := answerIPs(r); r.Rcode != dns.RcodeSuccess || !slices.Equal(got, []string{"203.0.113.7"}) {
		t.Fatalf("forwarded example.test: %s %v", dns.RcodeToString[r.Rcode], got)
	}
	if r, _ := query(t, clientNS, "udp", "nothing.example.test", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Fatalf("forwarded NXDOMAIN: %s", dns.RcodeToString[r.Rcode])
	}
	if n := upQueries.Load(); n != 2 {
		t.Fatalf("upstream saw %d queries, want 2", n)
	}

	// Changes show within a second: an unhealthy replica leaves, a new
	// one joins.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > time.Second {
				t.Fatalf("%s: not visible after 1 s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s visible after %v", what, time.Since(start).Round(time.Millisecond))
	}
	if err := m.SetHealthy(ctx, "web1", false); err != nil {
		t.Fatal(err)
	}
	waitFor("unhealthy web1", func() bool {
		r, _ := query(t, clientNS, "udp", "web", dns.TypeA)
		return slices.Equal(answerIPs(r), []string{web2.IP().String()})
	})
	web3 := attach(t, m, AttachSpec{Network: front.Name, ContainerID: "web3", NetNSPath: newNS(t, dir, "web3"), Names: []string{"proj-web-3", "web"}})
	waitFor("new replica web3", func() bool {
		r, _ := query(t, clientNS, "udp", "web", dns.TypeA)
		return len(answerIPs(r)) == 2 && slices.Contains(answerIPs(r), web3.IP().String())
	})

	// Remove closes the sockets.
	s.Remove("client")
	inNS(t, clientNS, func() {
		c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
		m := new(dns.Msg)
		m.SetQuestion("web.", dns.TypeA)
		if _, _, err := c.Exchange(m, "127.0.0.11:53"); err == nil {
			t.Error("still answering after Remove")
		}
	})
}

func TestDNSInternalOnlyDoesNotForward(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	m, dir := newManager(t)
	back := ensure(t, m, NetworkSpec{Name: "p_back", Project: "p", Internal: true})
	removeNet(t, m, back.Name)
	ns := newNS(t, dir, "c")
	attach(t, m, AttachSpec{Network: back.Name, ContainerID: "c", NetNSPath: ns, Names: []string{"c"}})
	up, upQueries := fakeUpstream(t)
	s := NewDNSServer(m, DNSConfig{Upstreams: []string{up}})
	defer s.Close()
	if err := s.Add(ctx, DNSContainer{ContainerID: "c", NetNSPath: ns}); err != nil {
		t.Fatal(err)
	}
	if r, _ := query(t, ns, "udp", "c", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("own name: %v", r)
	}
	if r, _ := query(t, ns, "udp", "example.test", dns.TypeA); r.Rcode != dns.RcodeServerFailure || upQueries.Load() != 0 {
		t.Fatalf("external name from an internal network: %s, upstream saw %d", dns.RcodeToString[r.Rcode], upQueries.Load())
	}
}

func TestNormalizeUpstreams(t *testing.T) {
	got, err := normalizeUpstreams([]string{"10.0.0.1", "10.0.0.2:5353", "::1", "[fe80::1]:53"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1:53", "10.0.0.2:5353", "[::1]:53", "[fe80::1]:53"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := normalizeUpstreams([]string{"dns.example"}); err == nil {
		t.Fatal("a host name was accepted")
	}
}
