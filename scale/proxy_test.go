package scale

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// idServer is a TCP backend on 127.0.0.1 that greets every connection with
// its ID and a newline, echoes what it reads, and after the client's FIN
// writes "bye\n" and closes.
type idServer struct {
	id    string
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startIDServer(t testing.TB, id string) *idServer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &idServer{id: id, ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go s.serve(c)
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *idServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	if _, err := io.WriteString(c, s.id+"\n"); err != nil {
		return
	}
	// Through user space: Go's splice would keep pipes in its pool, which
	// TestProxyReleasesDescriptors must not count.
	if _, err := io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c}); err != nil {
		return
	}
	io.WriteString(c, "bye\n")
}

func (s *idServer) addr() string { return s.ln.Addr().String() }

// stop closes the listener and every connection; idempotent.
func (s *idServer) stop() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startProxy starts a TCP proxy on a random 127.0.0.1 port.
func startProxy(t testing.TB, spec PortSpec, backends []Backend) *Proxy {
	t.Helper()
	if spec.HostIP == "" {
		spec.HostIP = "127.0.0.1"
	}
	if spec.DialTimeout == 0 {
		spec.DialTimeout = time.Second
	}
	p := NewProxy(spec)
	p.SetBackends(backends)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func backendsOf(servers []*idServer) []Backend {
	var out []Backend
	for _, s := range servers {
		out = append(out, Backend{ID: s.id, Addr: s.addr(), Healthy: true})
	}
	return out
}

func startIDServers(t testing.TB, n int) []*idServer {
	var out []*idServer
	for i := range n {
		out = append(out, startIDServer(t, "b"+strconv.Itoa(i)))
	}
	return out
}

// ask makes one connection through addr and returns the ID that answered.
func ask(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// longConn is a client connection kept open through the proxy.
type longConn struct {
	c  net.Conn
	r  *bufio.Reader
	id string
}

func openLong(t testing.TB, addr string) *longConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	id, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return &longConn{c: c, r: r, id: strings.TrimSuffix(id, "\n")}
}

// echo makes one round trip on the connection.
func (l *longConn) echo(msg string) error {
	l.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(l.c, msg+"\n"); err != nil {
		return err
	}
	got, err := l.r.ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// closedWithin reports whether the peer closes the connection within d.
func (l *longConn) closedWithin(d time.Duration) bool {
	l.c.SetReadDeadline(time.Now().Add(d))
	_, err := l.r.ReadByte()
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func countAsks(t *testing.T, addr string, n int) map[string]int {
	t.Helper()
	got := make(map[string]int)
	for range n {
		id, err := ask(addr)
		if err != nil {
			t.Fatalf("connection through proxy: %v", err)
		}
		got[id]++
	}
	return got
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProxyRoundRobin(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		t.Run(fmt.Sprintf("concurrent=%v", concurrent), func(t *testing.T) {
			servers := startIDServers(t, 5)
			p := startProxy(t, PortSpec{}, backendsOf(servers))
			addr := p.Addr().String()
			got := make(map[string]int)
			if concurrent {
				var mu sync.Mutex
				var wg sync.WaitGroup
				errs := make(chan error, 50)
				for range 50 {
					wg.Go(func() {
						id, err := ask(addr)
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						got[id]++
						mu.Unlock()
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Errorf("connection through proxy: %v", err)
				}
			} else {
				got = countAsks(t, addr, 50)
			}
			for _, s := range servers {
				if n := got[s.id]; n < 6 || n > 14 {
					t.Errorf("backend %s got %d of 50 connections, want 10±4 (all: %v)", s.id, n, got)
				}
			}
			var total uint64
			for _, st := range p.Stats() {
				total += st.Total
			}
			if total != 50 {
				t.Errorf("Stats count %d connections, want 50", total)
			}
		})
	}
}

func TestProxySkipsRefusingBackend(t *testing.T) {
	servers := startIDServers(t, 2)
	backends := []Backend{
		{ID: "dead0", Addr: closedPort(t), Healthy: true},
		{ID: servers[0].id, Addr: servers[0].addr(), Healthy: true},
		{ID: "dead1", Addr: closedPort(t), Healthy: true},
		{ID: servers[1].id, Addr: servers[1].addr(), Healthy: true},
	}
	p := startProxy(t, PortSpec{}, backends)
	got := countAsks(t, p.Addr().String(), 20)
	if got[servers[0].id]+got[servers[1].id] != 20 || got[servers[0].id] == 0 || got[servers[1].id] == 0 {
		t.Errorf("connections per backend %v, want all 20 on b0 and b1", got)
	}
}

// blackhole returns a 127.0.0.1 address whose SYNs go unanswered: a listener
// with a backlog of one, filled, so that the kernel drops further SYNs.
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 4 {
		c, err := net.DialTimeout("tcp4", addr, 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill a listen queue")
	return ""
}

func TestProxySkipsSilentBackend(t *testing.T) {
	servers := startIDServers(t, 1)
	const timeout = 300 * time.Millisecond
	p := startProxy(t, PortSpec{DialTimeout: timeout}, []Backend{
		{ID: "silent", Addr: blackhole(t), Healthy: true},
		{ID: "b0", Addr: servers[0].addr(), Healthy: true},
	})
	start := time.Now()
	got := countAsks(t, p.Addr().String(), 2)
	if got["b0"] != 2 {
		t.Errorf("connections per backend %v, want both on b0", got)
	}
	// One of the two started at the silent backend and waited for the timeout.
	if el := time.Since(start); el < timeout || el > timeout+time.Second {
		t.Errorf("two connections took %v, want about the dial timeout of %v", el, timeout)
	}
}

func TestProxyNoBackendClosesClient(t *testing.T) {
	for _, tc := range []struct {
		name     string
		backends []Backend
	}{
		{"none", nil},
		{"all refuse", []Backend{
			{ID: "dead0", Addr: closedPort(t), Healthy: true},
			{ID: "dead1", Addr: closedPort(t), Healthy: true},
		}},
		{"all unhealthy", []Backend{{ID: "sick", Addr: startIDServer(t, "sick").addr()}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, PortSpec{}, tc.backends)
			start := time.Now()
			_, err := ask(p.Addr().String())
			if err == nil {
				t.Fatal("connection answered, want it closed")
			}
			if time.Since(start) > 2*time.Second {
				t.Errorf("closing took %v", time.Since(start))
			}
		})
	}
}

func TestProxyUnhealthyGetsNothing(t *testing.T) {
	servers := startIDServers(t, 3)
	backends := backendsOf(servers)
	backends[1].Healthy = false
	p := startProxy(t, PortSpec{}, backends)
	addr := p.Addr().String()
	got := countAsks(t, addr, 30)
	if got["b1"] != 0 || got["b0"] != 15 || got["b2"] != 15 {
		t.Errorf("connections per backend %v, want b0 15, b2 15, none to the unhealthy b1", got)
	}
	backends[1].Healthy = true
	p.SetBackends(backends)
	got = countAsks(t, addr, 30)
	if got["b1"] != 10 {
		t.Errorf("after recovery, connections per backend %v, want 10 each", got)
	}
}

func TestProxyScaleDownUnderLoad(t *testing.T) {
	servers := startIDServers(t, 5)
	const grace = 600 * time.Millisecond
	p := startProxy(t, PortSpec{DrainGrace: grace}, backendsOf(servers))
	addr := p.Addr().String()

	// One long-lived connection per backend, open across the change.
	long := make(map[string]*longConn)
	for range 5 {
		l := openLong(t, addr)
		long[l.id] = l
	}
	if len(long) != 5 {
		t.Fatalf("long connections reached %d backends, want 5", len(long))
	}

	var (
		changed  atomic.Bool
		failures atomic.Int64
		requests atomic.Int64
		mu       sync.Mutex
		after    = make(map[string]int) // answers that began after the change
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for range 2 {
		wg.Go(func() {
			deadline := time.Now().Add(5 * time.Second)
			for i := 0; i < 3000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				began := changed.Load()
				id, err := ask(addr)
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					t.Errorf("request failed during scale-down: %v", err)
					continue
				}
				if began {
					mu.Lock()
					after[id]++
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	p.SetBackends(backendsOf(servers[:2]))
	changed.Store(true)
	removedAt := time.Now()

	for _, id := range []string{"b2", "b3", "b4"} {
		if err := long[id].echo("still there"); err != nil {
			t.Errorf("connection to removed %s broke before its grace: %v", id, err)
		}
		// At least the long connection; a request of the loop may be in flight.
		if n := p.Conns(id); n < 1 {
			t.Errorf("Conns(%s) = %d while draining, want its long connection counted", id, n)
		}
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Errorf("%d of %d requests failed during the change", f, requests.Load())
	}
	for id := range after {
		if id != "b0" && id != "b1" {
			t.Errorf("removed backend %s got new connections after the change: %v", id, after)
		}
	}

	for _, id := range []string{"b2", "b3", "b4"} {
		if !long[id].closedWithin(grace + time.Second) {
			t.Errorf("connection to removed %s still open after the grace", id)
		}
	}
	if el := time.Since(removedAt); el < grace-50*time.Millisecond {
		t.Errorf("removed backends' connections closed after %v, before the grace of %v", el, grace)
	}
	waitFor(t, time.Second, "draining records gone", func() bool { return len(p.Stats()) == 2 })
	for _, id := range []string{"b0", "b1"} {
		if err := long[id].echo("kept"); err != nil {
			t.Errorf("connection to kept %s: %v", id, err)
		}
	}
}

func TestProxyDrain(t *testing.T) {
	servers := startIDServers(t, 3)
	p := startProxy(t, PortSpec{DrainGrace: time.Minute}, backendsOf(servers))
	addr := p.Addr().String()
	long := make(map[string]*longConn)
	for range 3 {
		l := openLong(t, addr)
		long[l.id] = l
	}

	if err := p.Drain("nope", 0); !errors.Is(err, ErrNoSuchBackend) {
		t.Errorf("Drain of an unknown ID: %v, want ErrNoSuchBackend", err)
	}

	// Drained with a grace: no new connections, the open one goes on, and
	// a SetBackends that still lists it (a health update) keeps it drained.
	if err := p.Drain("b0", time.Minute); err != nil {
		t.Fatal(err)
	}
	p.SetBackends(backendsOf(servers))
	if got := countAsks(t, addr, 10); got["b0"] != 0 {
		t.Errorf("drained b0 got new connections: %v", got)
	}
	if err := long["b0"].echo("drained"); err != nil {
		t.Errorf("open connection to drained b0: %v", err)
	}
	// A client that finishes by itself leaves nothing behind.
	long["b0"].c.(*net.TCPConn).CloseWrite()
	if rest, _ := io.ReadAll(long["b0"].r); string(rest) != "bye\n" {
		t.Errorf("after half-close got %q, want the backend's bye", rest)
	}
	waitFor(t, time.Second, "b0's connection counted closed", func() bool { return p.Conns("b0") == 0 })

	// Drained with no grace: closed at once.
	if err := p.Drain("b1", 0); err != nil {
		t.Fatal(err)
	}
	if !long["b1"].closedWithin(time.Second) {
		t.Error("Drain(b1, 0) left its connection open")
	}

	// Removed with a long grace, then listed again: back in service and its
	// open connection is not closed.
	p.SetBackends(backendsOf(servers[:2]))
	if st := p.Stats(); len(st) != 3 || !st[2].Draining || st[2].ID != "b2" {
		t.Errorf("Stats after removing b2: %+v", st)
	}
	p.SetBackends(backendsOf(servers))
	if got := countAsks(t, addr, 4); got["b2"] != 4 {
		t.Errorf("after b2 came back (b0, b1 drained), connections %v, want all on b2", got)
	}
	if err := long["b2"].echo("back"); err != nil {
		t.Errorf("connection to re-added b2: %v", err)
	}
}

func TestProxySplice(t *testing.T) {
	servers := startIDServers(t, 1)
	p := startProxy(t, PortSpec{}, backendsOf(servers))
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	payload := make([]byte, 8<<20)
	rand.Read(payload)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte("b0\n"), payload...), "bye\n"...)
	if !bytes.Equal(got, want) {
		t.Errorf("got %d bytes back, want the greeting, the %d bytes echoed and bye (%d)", len(got), len(payload), len(want))
	}
	waitFor(t, time.Second, "connection counted closed", func() bool { return p.Conns("b0") == 0 })
}

func TestProxyPortTaken(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			var port int
			if proto == "tcp" {
				ln, err := net.Listen("tcp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				port = ln.Addr().(*net.TCPAddr).Port
			} else {
				pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				port = pc.LocalAddr().(*net.UDPAddr).Port
			}
			p := NewProxy(PortSpec{Protocol: proto, HostIP: "127.0.0.1", HostPort: port, Name: "web"})
			defer p.Close()
			err := p.Start(context.Background())
			want := fmt.Sprintf("web: Bind for 127.0.0.1:%d failed: port is already allocated", port)
			if err == nil || err.Error() != want {
				t.Fatalf("Start on a taken port: %v, want %q", err, want)
			}
			if !errors.Is(err, ErrPortAllocated) {
				t.Error("error does not match ErrPortAllocated")
			}
			var be *BindError
			if !errors.As(err, &be) || be.Addr != "127.0.0.1:"+strconv.Itoa(port) {
				t.Errorf("error is not a *BindError with the address: %#v", err)
			}
		})
	}
}

func TestProxyRandomPort(t *testing.T) {
	servers := startIDServers(t, 1)
	p := startProxy(t, PortSpec{HostPort: 0}, backendsOf(servers))
	a, ok := p.Addr().(*net.TCPAddr)
	if !ok || a.Port == 0 || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("Addr() = %v, want 127.0.0.1 and the port picked", p.Addr())
	}
	if id, err := ask(fmt.Sprintf("127.0.0.1:%d", a.Port)); err != nil || id != "b0" {
		t.Errorf("through the random port: %q, %v", id, err)
	}
	if err := p.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
}

func TestListenAddr(t *testing.T) {
	for _, tc := range []struct {
		spec                   PortSpec
		network, address, show string
		wantErr                bool
	}{
		{spec: PortSpec{HostPort: 8080}, network: "tcp", address: ":8080", show: "0.0.0.0:8080"},
		{spec: PortSpec{Protocol: "udp", HostPort: 53}, network: "udp", address: ":53", show: "0.0.0.0:53"},
		{spec: PortSpec{Protocol: "tcp", HostIP: "127.0.0.1"}, network: "tcp4", address: "127.0.0.1:0", show: "127.0.0.1:0"},
		{spec: PortSpec{Protocol: "udp", HostIP: "0.0.0.0", HostPort: 5000}, network: "udp4", address: "0.0.0.0:5000", show: "0.0.0.0:5000"},
		{spec: PortSpec{HostIP: "::1", HostPort: 80}, network: "tcp6", address: "[::1]:80", show: "[::1]:80"},
		{spec: PortSpec{HostIP: "::ffff:10.1.2.3", HostPort: 80}, network: "tcp4", address: "10.1.2.3:80", show: "10.1.2.3:80"},
		{spec: PortSpec{Protocol: "sctp", HostPort: 80}, wantErr: true},
		{spec: PortSpec{HostIP: "localhost", HostPort: 80}, wantErr: true},
		{spec: PortSpec{HostPort: 70000}, wantErr: true},
	} {
		network, address, show, err := listenAddr(tc.spec)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%+v: no error", tc.spec)
			}
			continue
		}
		if err != nil || network != tc.network || address != tc.address || show != tc.show {
			t.Errorf("%+v: %q %q %q %v, want %q %q %q", tc.spec, network, address, show, err, tc.network, tc.address, tc.show)
		}
	}
}

func TestProxyCloseLeavesNothing(t *testing.T) {
	servers := startIDServers(t, 2)
	udpBackend := startUDPEcho(t, "u0")
	time.Sleep(20 * time.Millisecond)
	before := runtime.NumGoroutine()

	p := startProxy(t, PortSpec{}, backendsOf(servers))
	addr := p.Addr().String()
	var long []*longConn
	for range 4 {
		long = append(long, openLong(t, addr))
	}
	u := startUDPProxy(t, PortSpec{}, []Backend{{ID: "u0", Addr: udpBackend.addr(), Healthy: true}})
	uc := udpClient(t)
	if got := roundTrip(t, uc, u.Addr(), "x"); got != "u0:x" {
		t.Fatalf("UDP through proxy: %q", got)
	}

	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := u.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, l := range long {
		if !l.closedWithin(time.Second) {
			t.Error("client connection left open by Close")
		}
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("listener still accepts after Close")
	}
	if err := p.Start(context.Background()); !errors.Is(err, ErrProxyClosed) {
		t.Errorf("Start after Close: %v, want ErrProxyClosed", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestProxyCloseCancelsDial(t *testing.T) {
	p := startProxy(t, PortSpec{DialTimeout: 10 * time.Second},
		[]Backend{{ID: "silent", Addr: blackhole(t), Healthy: true}})
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // the proxy is now dialling
	start := time.Now()
	p.Close()
	if el := time.Since(start); el > time.Second {
		t.Errorf("Close waited %v for a dial in flight", el)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("client read after Close: %v, want the connection closed", err)
	}
}
