package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/berthrun/berth/netmgr"
	"github.com/berthrun/berth/supervisor"
	"github.com/berthrun/berth/tests/harness"
)

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// getReady is get, retried while the server in the container starts.
func getReady(t *testing.T, port int) (string, error) {
	t.Helper()
	var body string
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if body, err = get(t, port); err == nil && body != "" {
			return body, nil
		}
	}
	return body, err
}

// get fetches http://127.0.0.1:port/ from the test (inside the sandbox).
func get(t *testing.T, port int) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	out := b.String()
	if i := strings.Index(out, "\r\n\r\n"); i >= 0 {
		return out[i+4:], nil
	}
	return "", fmt.Errorf("no HTTP response: %q", out)
}

const webCommand = `["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]`

func TestServiceDiscoveryAndIsolation(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: disco
services:
  web:
    image: busybox
    command: `+webCommand+`
    init: true
    networks:
      default:
        aliases: [www.internal]
  client:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    links: ["web:website"]
  outsider:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    networks: [other]
networks:
  other: {}
`)
	e.MustRun("up", "-d")
	time.Sleep(300 * time.Millisecond) // httpd binding its port
	webHost := strings.TrimSpace(e.MustRun("exec", "-T", "web", "hostname").Stdout)
	for _, name := range []string{"web", "disco-web-1", "www.internal", "website", webHost} {
		r := e.Run("exec", "-T", "client", "timeout", "5", "wget", "-qO-", "http://"+name+"/")
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != webHost {
			t.Errorf("client -> %s: exit %d, %q %q", name, r.Code, r.Stdout, r.Stderr)
		}
	}
	hosts := e.MustRun("exec", "-T", "client", "cat", "/etc/hosts").Stdout
	if !strings.Contains(hosts, "website") {
		t.Errorf("links: alias missing from /etc/hosts:\n%s", hosts)
	}
	// Another network: the name does not resolve there, and the address
	// does not answer.
	if r := e.Run("exec", "-T", "outsider", "nslookup", "web"); r.Code == 0 {
		t.Errorf("outsider resolved web: %s", r.Stdout)
	}
	ip := e.ContainerIP("web", 1)
	if r := e.Run("exec", "-T", "outsider", "timeout", "3", "wget", "-qO-", "http://"+ip+"/"); r.Code == 0 {
		t.Errorf("outsider reached web at %s across networks", ip)
	}
	e.MustRun("down", "-t", "1")
}

// TestDNSForwarding: a name berth does not own goes to the forwarders (the
// service's dns:, here a resolver the test runs on loopback); a name berth
// owns that does not exist is NXDOMAIN at once.
func TestDNSForwarding(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		switch {
		case len(r.Question) != 1 || r.Question[0].Name != "upstream.example.":
			m.Rcode = dns.RcodeNameError
		case r.Question[0].Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "upstream.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP("192.0.2.7")})
		default: // the name exists, without records of that type
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	defer srv.Shutdown()

	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: fwd
services:
  app:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    dns: ["%s"]
`, pc.LocalAddr().String()))
	e.MustRun("up", "-d")
	out := e.MustRun("exec", "-T", "app", "nslookup", "upstream.example").Stdout
	if !strings.Contains(out, "192.0.2.7") {
		t.Errorf("forwarded lookup: %s", out)
	}
	start := time.Now()
	r := e.Run("exec", "-T", "app", "nslookup", "nosuchservice")
	if r.Code == 0 || time.Since(start) > 2*time.Second {
		t.Errorf("unknown single name: exit %d after %v", r.Code, time.Since(start))
	}
	e.MustRun("down", "-t", "1")
}

func TestPublishedPorts(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	port := freePort(t)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: pub
services:
  web:
    image: busybox
    command: %s
    init: true
    ports: ["127.0.0.1:%d:80", "127.0.0.1::80"]
`, webCommand, port))
	e.MustRun("up", "-d")
	body, err := getReady(t, port)
	if err != nil || strings.TrimSpace(body) == "" {
		t.Fatalf("published port: %q, %v", body, err)
	}
	out := e.MustRun("port", "web", "80").Stdout
	if strings.TrimSpace(out) != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Errorf("port web 80 = %q", out)
	}
	if ps := e.MustRun("ps").Stdout; !strings.Contains(ps, fmt.Sprintf("127.0.0.1:%d->80/tcp", port)) {
		t.Errorf("ps PORTS:\n%s", ps)
	}

	// A second project asking for the same host port fails, names the
	// port, and leaves nothing.
	other := harness.New(t)
	other.Bin = e.Bin
	other.Root, other.RunRoot = e.Root, e.RunRoot
	other.WriteFile("compose.yaml", fmt.Sprintf(`
name: taken
services:
  web:
    image: busybox
    command: ["sleep", "3600"]
    ports: ["127.0.0.1:%d:80"]
`, port))
	r := other.Run("up", "-d")
	if r.Code == 0 || !strings.Contains(r.Stderr, fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Errorf("taken port: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if list := ps(t, other); len(list) != 0 {
		t.Errorf("containers left after the failed up: %+v", list)
	}
	e.MustRun("down", "-t", "1")
	if _, err := get(t, port); err == nil {
		t.Error("the port still answers after down")
	}
}

// TestPortTakenByAnotherService: two services of one project asking for
// the same host port fail the up with both names, and nothing is made.
func TestPortTakenByAnotherService(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	port := freePort(t)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: twice
services:
  a:
    image: busybox
    command: ["sleep", "3600"]
    ports: ["127.0.0.1:%[1]d:80"]
  b:
    image: busybox
    command: ["sleep", "3600"]
    ports: ["127.0.0.1:%[1]d:81"]
`, port))
	r := e.Run("up", "-d")
	if r.Code == 0 || !strings.Contains(r.Stderr, fmt.Sprintf("127.0.0.1:%d/tcp is already published by service", port)) ||
		!strings.Contains(r.Stderr, `"a"`) || !strings.Contains(r.Stderr, `"b"`) {
		t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	if list := ps(t, e, "-a"); len(list) != 0 {
		t.Errorf("containers left after the failed up: %+v", list)
	}
}

// TestSharedNetwork: two projects on `networks: default: name: shared`;
// the first one's down leaves the network to the second.
func TestSharedNetwork(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	compose := func(dir, project, service string) {
		e.WriteFile(dir+"/compose.yaml", fmt.Sprintf(`
name: %s
services:
  %s:
    image: busybox
    command: %s
    init: true
networks:
  default:
    name: shared
`, project, service, webCommand))
	}
	compose("one", "one", "alpha")
	compose("two", "two", "beta")
	e.MustRun("-f", "one/compose.yaml", "up", "-d")
	e.MustRun("-f", "two/compose.yaml", "up", "-d")
	time.Sleep(300 * time.Millisecond) // httpd binding its port
	// Containers of the two projects see each other on the shared network.
	r := e.Run("-f", "two/compose.yaml", "exec", "-T", "beta", "timeout", "5", "wget", "-qO-", "http://alpha/")
	if r.Code != 0 {
		t.Errorf("beta -> alpha across projects: %d %s", r.Code, r.Stderr)
	}
	networks, err := netmgr.New(supervisor.Paths{Root: e.Root, RunRoot: e.RunRoot}.NetworkDir())
	if err != nil {
		t.Fatal(err)
	}
	e.MustRun("-f", "one/compose.yaml", "down", "-t", "1")
	if _, err := networks.Network("shared"); err != nil {
		t.Errorf("first down removed the shared network: %v", err)
	}
	r = e.Run("-f", "two/compose.yaml", "exec", "-T", "beta", "timeout", "5", "wget", "-qO-", "http://beta/")
	if r.Code != 0 {
		t.Errorf("second project lost its network: %d %s", r.Code, r.Stderr)
	}
	e.MustRun("-f", "two/compose.yaml", "down", "-t", "1")
	if _, err := networks.Network("shared"); err == nil {
		t.Error("the last down left the shared network")
	}
}
