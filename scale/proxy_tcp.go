package scale

import (
	"errors"
	"net"
	"sync"
	"time"
)

// serveTCP accepts client connections until the listener is closed.
func (p *Proxy) serveTCP(ln *net.TCPListener) {
	defer p.wg.Done()
	var delay time.Duration
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or a connection reset before accept:
			// back off a little rather than spin, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.log.Warn("accept failed", "err", err, "retry", delay)
			select {
			case <-time.After(delay):
				continue
			case <-p.ctx.Done():
				return
			}
		}
		delay = 0
		p.wg.Add(1)
		go p.handleTCP(c)
	}
}

// handleTCP connects client to the first usable backend that accepts, in
// round-robin order, and splices the two until both directions end.
func (p *Proxy) handleTCP(client *net.TCPConn) {
	defer p.wg.Done()
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
	// ReadFrom between two *net.TCPConn is where Go uses splice(2) on Linux:
	// the bytes move through a kernel pipe and never reach user space.
	if _, err := dst.ReadFrom(src); err != nil {
		f.close()
		return
	}
	if err := dst.CloseWrite(); err != nil {
		f.close()
	}
}
