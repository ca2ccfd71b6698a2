package scale

import (
	"errors"
	"net"
	"sync"
	"time"
)

// acceptor is what the accept loop needs of a *net.TCPListener; tests
// stand in for it to fail with EMFILE.
type acceptor interface {
	AcceptTCP() (*net.TCPConn, error)
}

// Bounds of the pause after a failed accept, as net/http's.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// nextAcceptDelay doubles the pause after each failed accept in a row.
func nextAcceptDelay(d time.Duration) time.Duration {
	return min(max(2*d, minAcceptDelay), maxAcceptDelay)
}

// serveTCP accepts client connections until the listener is closed.
func (p *Proxy) serveTCP(ln acceptor) {
	defer p.wg.Done()
	var delay time.Duration
	failures := 0
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors (EMFILE, ENFILE) or a connection
			// reset before accept: the connection stays in the backlog,
			// so retrying at once would spin. Pause, doubling up to a
			// second, and say so once per streak.
			delay = nextAcceptDelay(delay)
			if failures == 0 {
				p.log.Warn("accept failed, backing off", "err", err)
			}
			failures++
			if !p.pause(delay) {
				return
			}
			continue
		}
		if failures > 0 {
			p.log.Warn("accept works again", "failures", failures)
		}
		delay, failures = 0, 0
		if !p.admit() {
			// Over the port's limit: a reset now tells the client more
			// than a connection left hanging in the backlog would.
			_ = c.SetLinger(0)
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.handleTCP(c)
	}
}

// pause waits d, or reports false once the proxy is closed.
func (p *Proxy) pause(d time.Duration) bool {
	if p.sleep != nil {
		return p.sleep(d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// admit counts a new client connection, or refuses it when the port holds
// MaxConns already. The first refusal of a streak is logged.
func (p *Proxy) admit() bool {
	if p.active.Add(1) <= int64(p.spec.MaxConns) {
		if p.limited.CompareAndSwap(true, false) {
			p.log.Warn("connection limit no longer reached", "limit", p.spec.MaxConns, "refused", p.refused.Load())
		}
		return true
	}
	p.active.Add(-1)
	p.refused.Add(1)
	if p.limited.CompareAndSwap(false, true) {
		p.log.Warn("connection limit reached, refusing new connections", "limit", p.spec.MaxConns)
	}
	return false
}

// handleTCP connects client to the first usable backend that accepts, in
// round-robin order, and splices the two until both directions end.
func (p *Proxy) handleTCP(client *net.TCPConn) {
	defer p.wg.Done()
	defer p.active.Add(-1)
	up, b := p.dialTCP()
	if up == nil {
		// Nothing accepted: closing is all a client can be told.
		client.Close()
		return
	}
	f := &tcpFlow{client: client, up: up}
	if !p.attach(b, f) {
		f.close()
		return
	}
	defer p.detach(b, f)
	f.splice()
}

// dialTCP tries each usable backend once, starting at the round-robin
// position, and returns the first connection made.
func (p *Proxy) dialTCP() (*net.TCPConn, *backend) {
	d := net.Dialer{Timeout: p.spec.DialTimeout}
	for _, id := range p.candidates() {
		b, addr, ok := p.reserve(id)
		if !ok {
			continue // removed, drained or unhealthy since the list was taken
		}
		c, err := d.DialContext(p.ctx, "tcp", addr)
		if err != nil {
			p.attach(b, nil)
			if p.ctx.Err() != nil {
				return nil, nil
			}
			p.log.Debug("backend refused", "backend", id, "addr", addr, "err", err)
			continue
		}
		return c.(*net.TCPConn), b
	}
	return nil, nil
}

// tcpFlow is one proxied TCP connection: the client's and the backend's.
type tcpFlow struct {
	client, up *net.TCPConn
	once       sync.Once
}

func (f *tcpFlow) close() {
	f.once.Do(func() {
		f.client.Close()
		f.up.Close()
	})
}

// splice copies both directions until each has ended, then closes both.
func (f *tcpFlow) splice() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.pipe(f.up, f.client)
	}()
	f.pipe(f.client, f.up)
	<-done
	f.close()
}

// pipe copies src to dst. On a clean end of src it passes the half-close on
// (FIN) and lets the other direction go on; on an error (reset, closed by a
// drain) it closes both so that the other direction ends too.
func (f *tcpFlow) pipe(dst, src *net.TCPConn) {
	// splice(2): the bytes move through a kernel pipe and never reach
	// user space.
	if err := spliceConn(dst, src); err != nil {
		f.close()
		return
	}
	if err := dst.CloseWrite(); err != nil {
		f.close()
	}
}
