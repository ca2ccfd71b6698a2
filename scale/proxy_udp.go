package scale

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxDatagram is the largest UDP payload over IPv4 and IPv6 without
	// jumbograms.
	maxDatagram = 65535
	// maxUDPSessions bounds the memory a flood of client addresses can take
	// (one socket and one buffer each); datagrams beyond it are dropped.
	maxUDPSessions = 1024
)

// udpSession is one client address's association with a backend: its own
// connected socket, so that replies come back on it and go to that client.
type udpSession struct {
	client netip.AddrPort
	b      *backend
	up     *net.UDPConn
	last   atomic.Int64 // unix nanoseconds of the last datagram either way
	once   sync.Once
}

func (s *udpSession) close() {
	s.once.Do(func() { s.up.Close() })
}

func (s *udpSession) touch() {
	s.last.Store(time.Now().UnixNano())
}

// serveUDP reads client datagrams until the listener is closed and forwards
// each through the client's session.
func (p *Proxy) serveUDP(ln *net.UDPConn) {
	defer p.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// An ICMP error queued on the listening socket and the like:
			// nothing to do for one datagram.
			p.log.Debug("read failed", "err", err)
			continue
		}
		p.forwardUDP(ln, from, buf[:n])
	}
}

// forwardUDP sends one client datagram to the client's backend. If the send
// fails (the backend answered an earlier datagram with an ICMP unreachable,
// so the kernel reports ECONNREFUSED) the session ends and the datagram goes
// to a new session on the next backend.
func (p *Proxy) forwardUDP(ln *net.UDPConn, from netip.AddrPort, data []byte) {
	for range 2 {
		s := p.session(ln, from)
		if s == nil {
			return
		}
		s.touch()
		if _, err := s.up.Write(data); err == nil {
			return
		}
		p.endSession(s)
	}
}

// session returns the live session of client, making one on the next
// usable backend if there is none.
func (p *Proxy) session(ln *net.UDPConn, client netip.AddrPort) *udpSession {
	p.mu.Lock()
	s := p.sessions[client]
	full := len(p.sessions) >= maxUDPSessions
	p.mu.Unlock()
	if s != nil {
		return s
	}
	if full {
		p.log.Debug("too many UDP sessions, datagram dropped", "client", client)
		return nil
	}
	var d net.Dialer
	for _, id := range p.candidates() {
		b, addr, ok := p.reserve(id)
		if !ok {
			continue
		}
		// No handshake: dialing UDP only binds a local port and sets the
		// peer, so it fails only on a malformed or unroutable address.
		c, err := d.DialContext(p.ctx, "udp", addr)
		if err != nil {
			p.attach(b, nil)
			p.log.Debug("backend unreachable", "backend", id, "addr", addr, "err", err)
			continue
		}
		s := &udpSession{client: client, b: b, up: c.(*net.UDPConn)}
		s.touch()
		if !p.attach(b, s) {
			s.close()
			return nil
		}
		p.mu.Lock()
		p.sessions[client] = s
		p.mu.Unlock()
		p.wg.Add(1)
		go p.udpReplies(ln, s)
		return s
	}
	return nil
}

// udpReplies forwards the backend's datagrams to the client until the session
// is idle for UDPIdleTimeout, the backend is unreachable, or it is closed.
func (p *Proxy) udpReplies(ln *net.UDPConn, s *udpSession) {
	defer p.wg.Done()
	defer p.endSession(s)
	idle := p.spec.UDPIdleTimeout
	buf := make([]byte, maxDatagram)
	for {
		s.up.SetReadDeadline(time.Unix(0, s.last.Load()).Add(idle))
		n, err := s.up.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) &&
				time.Since(time.Unix(0, s.last.Load())) < idle {
				continue // the client sent meanwhile
			}
			return
		}
		s.touch()
		if _, err := ln.WriteToUDPAddrPort(buf[:n], s.client); err != nil &&
			errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// endSession forgets s and closes its socket; it may be called more than once.
func (p *Proxy) endSession(s *udpSession) {
	p.mu.Lock()
	if p.sessions[s.client] == s {
		delete(p.sessions, s.client)
	}
	p.detachLocked(s.b, s)
	p.mu.Unlock()
	s.close()
}
