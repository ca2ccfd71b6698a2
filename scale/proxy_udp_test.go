package scale

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// udpEcho is a UDP backend on 127.0.0.1 that answers every datagram with
// "<id>:<payload>".
type udpEcho struct {
	id   string
	pc   net.PacketConn
	done chan struct{}
	once sync.Once
}

func startUDPEcho(t testing.TB, id string) *udpEcho {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &udpEcho{id: id, pc: pc, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(id+":"), buf[:n]...), from)
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *udpEcho) addr() string { return s.pc.LocalAddr().String() }

func (s *udpEcho) stop() {
	s.once.Do(func() { s.pc.Close() })
	<-s.done
}

func startUDPProxy(t testing.TB, spec PortSpec, backends []Backend) *Proxy {
	t.Helper()
	spec.Protocol = "udp"
	if spec.HostIP == "" {
		spec.HostIP = "127.0.0.1"
	}
	p := NewProxy(spec)
	p.SetBackends(backends)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func udpClient(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg to addr and waits up to wait for one reply.
func exchange(c *net.UDPConn, addr net.Addr, msg string, wait time.Duration) (string, error) {
	if _, err := c.WriteTo([]byte(msg), addr); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func roundTrip(t testing.TB, c *net.UDPConn, addr net.Addr, msg string) string {
	t.Helper()
	got, err := exchange(c, addr, msg, 2*time.Second)
	if err != nil {
		t.Fatalf("UDP round trip: %v", err)
	}
	return got
}

func TestProxyUDP(t *testing.T) {
	a, b := startUDPEcho(t, "u0"), startUDPEcho(t, "u1")
	backends := []Backend{
		{ID: "u0", Addr: a.addr(), Healthy: true},
		{ID: "u1", Addr: b.addr(), Healthy: true},
	}
	const idle = 300 * time.Millisecond
	p := startUDPProxy(t, PortSpec{UDPIdleTimeout: idle}, backends)
	if ua, ok := p.Addr().(*net.UDPAddr); !ok || ua.Port == 0 {
		t.Fatalf("Addr() = %v, want a UDP address with the port picked", p.Addr())
	}

	// Each client address is a session pinned to one backend; sessions
	// take the backends in turn.
	clients := []*net.UDPConn{udpClient(t), udpClient(t)}
	owner := make(map[*net.UDPConn]string)
	for i := range 3 {
		for _, c := range clients {
			got := roundTrip(t, c, p.Addr(), "ping")
			id, payload, _ := strings.Cut(got, ":")
			if payload != "ping" {
				t.Fatalf("reply %q", got)
			}
			if i == 0 {
				owner[c] = id
			} else if owner[c] != id {
				t.Errorf("client moved from %s to %s within its session", owner[c], id)
			}
		}
	}
	if owner[clients[0]] == owner[clients[1]] {
		t.Errorf("both sessions went to %s, want one on each backend", owner[clients[0]])
	}
	if p.Conns("u0") != 1 || p.Conns("u1") != 1 {
		t.Errorf("sessions u0=%d u1=%d, want 1 each", p.Conns("u0"), p.Conns("u1"))
	}

	// Idle sessions end.
	waitFor(t, idle+2*time.Second, "idle sessions expired", func() bool {
		return p.Conns("u0") == 0 && p.Conns("u1") == 0
	})

	// A backend that is gone: its client's datagrams go to a new session on
	// the other backend. The first datagram sent to the dead one is lost.
	c := clients[0]
	first := roundTrip(t, c, p.Addr(), "again")
	dead, alive := a, "u1"
	if strings.HasPrefix(first, "u1:") {
		dead, alive = b, "u0"
	}
	dead.stop()
	var got string
	for range 20 {
		reply, err := exchange(c, p.Addr(), "retry", 200*time.Millisecond)
		if err == nil {
			got = reply
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
	}
	if got != alive+":retry" {
		t.Errorf("after its backend went away the client got %q, want %q", got, alive+":retry")
	}
}

func TestProxyUDPScaleDown(t *testing.T) {
	a, b := startUDPEcho(t, "u0"), startUDPEcho(t, "u1")
	both := []Backend{
		{ID: "u0", Addr: a.addr(), Healthy: true},
		{ID: "u1", Addr: b.addr(), Healthy: true},
	}
	const grace = 300 * time.Millisecond
	p := startUDPProxy(t, PortSpec{DrainGrace: grace}, both)
	c0, c1 := udpClient(t), udpClient(t)
	first0 := roundTrip(t, c0, p.Addr(), "x")
	roundTrip(t, c1, p.Addr(), "x")

	// u1 removed: its session goes on during the grace, then ends, and the
	// client's next datagram starts a session on u0.
	p.SetBackends(both[:1])
	onU1 := c1
	if strings.HasPrefix(first0, "u1:") {
		onU1 = c0
	}
	if got := roundTrip(t, onU1, p.Addr(), "y"); got != "u1:y" {
		t.Errorf("during the grace got %q, want u1:y", got)
	}
	waitFor(t, grace+time.Second, "u1's session closed", func() bool { return p.Conns("u1") == 0 })
	if got := roundTrip(t, onU1, p.Addr(), "z"); got != "u0:z" {
		t.Errorf("after the grace got %q, want u0:z", got)
	}
}
