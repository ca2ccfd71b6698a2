package scale

import (
	"errors"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestProxyConnLimit(t *testing.T) {
	servers := startIDServers(t, 1)
	p := startProxy(t, PortSpec{MaxConns: 2}, backendsOf(servers))
	addr := p.Addr().String()
	a := openLong(t, addr)
	openLong(t, addr)

	// The third is accepted and reset at once, not left in the backlog.
	// The reset may even reach the client's connect.
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read on a connection over the limit: %v, want it reset", err)
		}
	}
	waitFor(t, 2*time.Second, "connection refused", func() bool { return p.refused.Load() == 1 })
	if n := p.refused.Load(); n != 1 {
		t.Errorf("refused %d connections, want 1", n)
	}

	// A slot freed serves the next client.
	a.c.Close()
	waitFor(t, 2*time.Second, "closed connection released", func() bool { return p.active.Load() == 1 })
	if id, err := ask(addr); err != nil || id != "b0" {
		t.Errorf("connection after a slot freed: %q, %v", id, err)
	}
}

func TestDefaultMaxConns(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	n := DefaultMaxConns()
	if n < 64 {
		t.Errorf("DefaultMaxConns() = %d, want at least 64", n)
	}
	if rl.Cur > 2048 && n*fdsPerConn > int(rl.Cur)/2 {
		t.Errorf("DefaultMaxConns() = %d: %d descriptors, more than half of the limit %d", n, n*fdsPerConn, rl.Cur)
	}
}

// failingAcceptor fails with EMFILE a number of times, then reports the
// listener closed.
type failingAcceptor struct{ failures int }

func (f *failingAcceptor) AcceptTCP() (*net.TCPConn, error) {
	if f.failures == 0 {
		return nil, net.ErrClosed
	}
	f.failures--
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

func TestAcceptBacksOffOnEMFILE(t *testing.T) {
	p := NewProxy(PortSpec{})
	var delays []time.Duration
	p.sleep = func(d time.Duration) bool {
		delays = append(delays, d)
		return true
	}
	p.wg.Add(1)
	p.serveTCP(&failingAcceptor{failures: 10})
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}
	if !slices.Equal(delays, want) {
		t.Errorf("pauses after failed accepts: %v, want %v", delays, want)
	}

	// Close during a pause ends the loop.
	p = NewProxy(PortSpec{})
	p.Close()
	p.wg.Add(1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.serveTCP(&failingAcceptor{failures: 1 << 30})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("accept loop went on after Close")
	}
}

// openFDs counts this process's descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestProxyReleasesDescriptors checks that a connection's pipes go with it:
// Go's own splice pool keeps them until the garbage collector runs, so the
// collector is off here.
func TestProxyReleasesDescriptors(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	servers := startIDServers(t, 1)
	p := startProxy(t, PortSpec{}, backendsOf(servers))
	addr := p.Addr().String()
	if err := openLong(t, addr).echo("warm"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "warm-up connection counted", func() bool { return p.Conns("b0") == 1 })
	before := openFDs(t)

	var conns []*longConn
	for range 100 {
		l := openLong(t, addr)
		if err := l.echo("x"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, l)
	}
	// Each connection holds a socket in the test, one in the server, two
	// in the proxy, and the proxy's two pipes.
	if during := openFDs(t); during < before+100*(1+1+2+4) {
		t.Errorf("%d descriptors with 100 connections open, %d before: pipes not used?", during, before)
	}
	for _, l := range conns {
		l.c.Close()
	}
	waitFor(t, 5*time.Second, "descriptors released", func() bool { return openFDs(t) <= before+5 })
}

// TestProxyRestartedBackend: connections made before a replica's restart
// went to the process that ended; they are closed after the drain grace
// even though the replica is back under the same ID, and the new run's are
// not.
func TestProxyRestartedBackend(t *testing.T) {
	servers := startIDServers(t, 1)
	b := Backend{ID: "b0", Addr: servers[0].addr(), Healthy: true, Run: "1"}
	p := startProxy(t, PortSpec{DrainGrace: 200 * time.Millisecond}, []Backend{b})
	addr := p.Addr().String()
	before := openLong(t, addr)

	b.Run = "2"
	p.SetBackends([]Backend{b})
	after := openLong(t, addr)
	if !before.closedWithin(3 * time.Second) {
		t.Error("a connection of the run before the restart outlived the drain grace")
	}
	if err := after.echo("still here"); err != nil {
		t.Errorf("connection of the new run: %v", err)
	}

	// Removed and listed again with a new run before the drain ends: the
	// same.
	old := openLong(t, addr)
	p.SetBackends(nil)
	b.Run = "3"
	p.SetBackends([]Backend{b})
	if !old.closedWithin(3 * time.Second) {
		t.Error("a connection of the run before a stop and start outlived the drain grace")
	}
	if id, err := ask(addr); err != nil || id != "b0" {
		t.Errorf("connection after the restart: %q, %v", id, err)
	}
}
