package netmgr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// DNSAddr is where the embedded DNS server listens inside every container,
// as docker's does; ResolvConf points containers at it.
const DNSAddr = "127.0.0.11"

// ownedTTL is the TTL of the records berth answers itself. Docker uses 600 s;
// berth uses 0 so that a caching resolver in a container sees a scaled or
// restarted service at once (the server itself rereads state every
// DNSConfig.Refresh).
const ownedTTL = 0

// udpIdleWait is how long the UDP server waits for a query before it
// wakes up for nothing. Its reads end at Shutdown, not by this deadline;
// miekg/dns's default of 2 s woke every idle container's server every 2 s,
// and each wakeup mapped back pages of the supervisor's binary (and ran its
// scheduler) that the idle trim had given back.
const udpIdleWait = 24 * time.Hour

// DNSConfig configures a DNSServer.
type DNSConfig struct {
	// Upstreams get the queries berth does not answer itself, for
	// containers that name none of their own: "ip" or "ip:port". Empty
	// means the nameservers of the host's /etc/resolv.conf.
	Upstreams []string
	// Timeout bounds one query to one upstream; 2 s by default.
	Timeout time.Duration
	// Refresh is how old the view of the endpoints may get before a query
	// rereads the state directory; 250 ms by default.
	Refresh time.Duration
}

// DNSContainer asks a DNSServer to serve one container.
type DNSContainer struct {
	ContainerID string
	NetNSPath   string
	// Upstreams (compose `dns:`) replace DNSConfig.Upstreams for this
	// container.
	Upstreams []string
}

// DNSServer is the embedded DNS server of a supervisor. For each container
// it answers on 127.0.0.11:53 (UDP and TCP) inside the container's network
// namespace (sockets opened in there, on other ports, with a DNAT rule from
// port 53; see listenInNS), from the endpoints of the networks that
// container is on:
//
//   - a service name, container name, hostname or alias: the A records of
//     every endpoint carrying it and not unhealthy, in an order that
//     rotates with each query; other types for such names get an empty
//     answer (NOERROR), AAAA included;
//   - "<name>.<network>": the same, on that network only;
//   - PTR for an endpoint address: the endpoint's first name;
//   - a name berth owns and cannot answer (a single label, a name of an
//     unhealthy endpoint, anything under a network's name, a reverse
//     name in a berth subnet): NXDOMAIN at once;
//   - anything else: forwarded to the upstream resolvers, from the
//     supervisor's own network namespace, unless the container is only on
//     internal networks (then SERVFAIL: internal means no way out).
type DNSServer struct {
	m   *Manager
	cfg DNSConfig

	mu         sync.Mutex
	view       *dnsView
	loaded     time.Time
	rotation   map[string]uint32
	containers map[string]*dnsListener
	closed     bool
}

type dnsListener struct {
	id        string
	upstreams []string
	udp, tcp  *dns.Server
}

// NewDNSServer returns a server answering from m's state. It serves
// nothing until Add.
func NewDNSServer(m *Manager, cfg DNSConfig) *DNSServer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 250 * time.Millisecond
	}
	return &DNSServer{m: m, cfg: cfg, rotation: map[string]uint32{}, containers: map[string]*dnsListener{}}
}

// Add starts serving a container. The container's namespace must exist
// (its loopback is brought up if it is not); the sockets are opened inside
// it and served from the caller's process.
func (s *DNSServer) Add(ctx context.Context, c DNSContainer) error {
	ups := c.Upstreams
	if len(ups) == 0 {
		ups = s.cfg.Upstreams
	}
	if len(ups) == 0 {
		// The host's resolvers; an entry berth cannot use is skipped
		// rather than failing the container, and so is a host without
		// a resolv.conf.
		if rc, err := dns.ClientConfigFromFile("/etc/resolv.conf"); err == nil {
			for _, sv := range rc.Servers {
				if _, err := normalizeUpstreams([]string{sv}); err == nil {
					ups = append(ups, sv)
				}
			}
		}
	}
	upstreams, err := normalizeUpstreams(ups)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("dns server closed")
	}
	if _, ok := s.containers[c.ContainerID]; ok {
		s.mu.Unlock()
		return fmt.Errorf("dns for %s: %w", c.ContainerID, ErrAlreadyExists)
	}
	s.mu.Unlock()

	if err := withNS(c.NetNSPath, loUp); err != nil {
		return err
	}
	pc, l, err := listenInNS(ctx, c.NetNSPath)
	if err != nil {
		return fmt.Errorf("dns for %s: %w", c.ContainerID, err)
	}
	dl := &dnsListener{id: c.ContainerID, upstreams: upstreams}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { s.serve(dl, w, r) })
	dl.udp = &dns.Server{PacketConn: pc, Handler: h, ReadTimeout: udpIdleWait}
	dl.tcp = &dns.Server{Listener: l, Handler: h, ReadTimeout: 5 * time.Second}
	for _, srv := range []*dns.Server{dl.udp, dl.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		select {
		case <-started:
		case <-ctx.Done():
		}
	}
	if err := ctx.Err(); err != nil {
		dl.close()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.containers[c.ContainerID]; ok || s.closed {
		dl.close()
		return fmt.Errorf("dns for %s: %w", c.ContainerID, ErrAlreadyExists)
	}
	s.containers[c.ContainerID] = dl
	return nil
}

func (d *dnsListener) close() {
	for _, srv := range []*dns.Server{d.udp, d.tcp} {
		if srv.Shutdown() != nil {
			// Never started: close its socket ourselves.
			if srv.PacketConn != nil {
				srv.PacketConn.Close()
			}
			if srv.Listener != nil {
				srv.Listener.Close()
			}
		}
	}
}

// Remove stops serving a container and closes its sockets. Removing one
// that is not served is not an error.
func (s *DNSServer) Remove(containerID string) {
	s.mu.Lock()
	dl := s.containers[containerID]
	delete(s.containers, containerID)
	s.mu.Unlock()
	if dl != nil {
		dl.close()
	}
}

// Close stops serving every container.
func (s *DNSServer) Close() error {
	s.mu.Lock()
	s.closed = true
	all := s.containers
	s.containers = map[string]*dnsListener{}
	s.mu.Unlock()
	for _, dl := range all {
		dl.close()
	}
	return nil
}

// listenInNS opens the server's sockets inside the namespace at path, on
// 127.0.0.11 and ports of the kernel's choosing, and redirects
// 127.0.0.11:53 to them with an nftables DNAT rule in that namespace (as
// docker does), so that port 53 stays free for the container's own
// processes: a DNS server in the container binding 0.0.0.0:53 would
// otherwise fail with "address in use". Conntrack turns the replies' source
// back into port 53. A socket stays in the namespace it was made in, so
// only its creation (and the netlink socket that programs the rule) needs
// a thread in there.
func listenInNS(ctx context.Context, path string) (net.PacketConn, net.Listener, error) {
	type result struct {
		pc  net.PacketConn
		l   net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter netns %s: %w", path, err)}
			return
		}
		var r result
		r.pc, r.err = net.ListenPacket("udp4", net.JoinHostPort(DNSAddr, "0"))
		if r.err == nil {
			r.l, r.err = net.Listen("tcp4", net.JoinHostPort(DNSAddr, "0"))
		}
		if r.err == nil {
			r.err = redirectDNS(r.pc.LocalAddr().(*net.UDPAddr).Port, r.l.Addr().(*net.TCPAddr).Port)
		}
		if err := netns.Set(orig); err != nil {
			// This thread must not run anything else: it stays locked
			// and exits with the goroutine.
			r.err = errors.Join(r.err, fmt.Errorf("leave netns %s: %w", path, err))
		} else {
			runtime.UnlockOSThread()
		}
		done <- r
	}()
	r := <-done
	if r.err != nil {
		if r.pc != nil {
			r.pc.Close()
		}
		if r.l != nil {
			r.l.Close()
		}
		return nil, nil, r.err
	}
	return r.pc, r.l, nil
}

func normalizeUpstreams(in []string) ([]string, error) {
	var out []string
	for _, u := range in {
		if a, err := netip.ParseAddr(u); err == nil {
			out = append(out, netip.AddrPortFrom(a, 53).String())
			continue
		}
		ap, err := netip.ParseAddrPort(u)
		if err != nil {
			return nil, invalidf("dns server %q", u)
		}
		out = append(out, ap.String())
	}
	return out, nil
}

// dnsView is what the server knows of the endpoints, rebuilt from the
// state directory.
type dnsView struct {
	networks  map[string]*Network
	container map[string][]string // container ID -> networks it is on
}

func (s *DNSServer) currentView() *dnsView {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.view != nil && time.Since(s.loaded) < s.cfg.Refresh {
		return s.view
	}
	all, err := s.m.loadAll()
	if err != nil && s.view != nil {
		return s.view // keep answering from the last good view
	}
	v := &dnsView{networks: map[string]*Network{}, container: map[string][]string{}}
	for _, n := range all {
		v.networks[n.Name] = n
		for _, ep := range n.Endpoints {
			v.container[ep.ContainerID] = append(v.container[ep.ContainerID], n.Name)
		}
	}
	s.view, s.loaded = v, time.Now()
	return v
}

func (s *DNSServer) rotate(key string, n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rotation[key]
	s.rotation[key] = r + 1
	if len(s.rotation) > 4096 { // names come and go; forget them all now and then
		clear(s.rotation)
	}
	return int(r % uint32(n))
}

func (s *DNSServer) serve(dl *dnsListener, w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	if len(req.Question) != 1 {
		resp.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(resp)
		return
	}
	if req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeNotImplemented)
		w.WriteMsg(resp)
		return
	}
	proto := "udp"
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	v := s.currentView()
	q := req.Question[0]
	if q.Qclass == dns.ClassINET {
		if ans, rcode, owned := s.answer(v, dl.id, q); owned {
			resp.SetReply(req)
			resp.Authoritative = true
			resp.RecursionAvailable = true
			resp.Rcode = rcode
			resp.Answer = ans
			s.write(w, req, resp, proto)
			return
		}
	}
	if v.internalOnly(dl.id) || len(dl.upstreams) == 0 {
		resp.SetRcode(req, dns.RcodeServerFailure)
		resp.RecursionAvailable = true
		w.WriteMsg(resp)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout*time.Duration(len(dl.upstreams)))
	defer cancel()
	r, err := s.forward(ctx, dl.upstreams, req, proto)
	if err != nil {
		resp.SetRcode(req, dns.RcodeServerFailure)
		resp.RecursionAvailable = true
		w.WriteMsg(resp)
		return
	}
	r.Id = req.Id
	w.WriteMsg(r)
}

func (s *DNSServer) write(w dns.ResponseWriter, req, resp *dns.Msg, proto string) {
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		resp.SetEdns0(uint16(min(size, 4096)), false)
	}
	if proto == "udp" {
		resp.Truncate(size)
	}
	w.WriteMsg(resp)
}

// forward asks the upstreams in turn; an upstream that fails or answers
// SERVFAIL or REFUSED passes the question to the next.
func (s *DNSServer) forward(ctx context.Context, upstreams []string, req *dns.Msg, proto string) (*dns.Msg, error) {
	var last *dns.Msg
	var lastErr error = errors.New("no upstream")
	for _, up := range upstreams {
		c := &dns.Client{Net: proto, Timeout: s.cfg.Timeout}
		r, _, err := c.ExchangeContext(ctx, req.Copy(), up)
		if err != nil {
			lastErr = err
			continue
		}
		if r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
			last = r
			continue
		}
		return r, nil
	}
	if last != nil {
		return last, nil
	}
	return nil, lastErr
}

func (v *dnsView) internalOnly(containerID string) bool {
	nets := v.container[containerID]
	if len(nets) == 0 {
		return false
	}
	for _, name := range nets {
		if !v.networks[name].Internal {
			return false
		}
	}
	return true
}

// answer resolves a question berth may own. owned false means forward it.
func (s *DNSServer) answer(v *dnsView, containerID string, q dns.Question) (ans []dns.RR, rcode int, owned bool) {
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	if name == "" {
		return nil, 0, false
	}
	nets := v.container[containerID]
	if q.Qtype == dns.TypePTR && strings.HasSuffix(name, ".in-addr.arpa") {
		return s.answerPTR(v, nets, q, name)
	}
	// "<name>.<network>" looks on that network only.
	scope := nets
	scoped := false
	for _, nn := range nets {
		if base, ok := strings.CutSuffix(name, "."+strings.ToLower(nn)); ok && base != "" {
			name, scope, scoped = base, []string{nn}, true
			break
		}
	}
	var ips []netip.Addr
	known := false
	for _, nn := range scope {
		for _, ep := range v.networks[nn].Endpoints {
			if !ep.hasName(name) {
				continue
			}
			known = true
			if !ep.Unhealthy && !slices.Contains(ips, ep.IP()) {
				ips = append(ips, ep.IP())
			}
		}
	}
	if !known && !scoped && strings.Contains(name, ".") {
		return nil, 0, false
	}
	if len(ips) == 0 {
		return nil, dns.RcodeNameError, true
	}
	if q.Qtype != dns.TypeA && q.Qtype != dns.TypeANY {
		return nil, dns.RcodeSuccess, true // NODATA: berth has no IPv6 and no other types
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	k := s.rotate(name, len(ips))
	ips = append(ips[k:], ips[:k]...)
	for _, ip := range ips {
		ans = append(ans, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ownedTTL},
			A:   ip.AsSlice(),
		})
	}
	return ans, dns.RcodeSuccess, true
}

func (s *DNSServer) answerPTR(v *dnsView, nets []string, q dns.Question, name string) ([]dns.RR, int, bool) {
	labels := strings.Split(strings.TrimSuffix(name, ".in-addr.arpa"), ".")
	if len(labels) != 4 {
		return nil, 0, false
	}
	slices.Reverse(labels)
	ip, err := netip.ParseAddr(strings.Join(labels, "."))
	if err != nil {
		return nil, 0, false
	}
	inSubnet := false
	for _, nn := range nets {
		n := v.networks[nn]
		if !n.Subnet.Contains(ip) {
			continue
		}
		inSubnet = true
		for _, ep := range n.Endpoints {
			if ep.IP() == ip && len(ep.Names) > 0 {
				return []dns.RR{&dns.PTR{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ownedTTL},
					Ptr: dns.Fqdn(ep.Names[0]),
				}}, dns.RcodeSuccess, true
			}
		}
	}
	if inSubnet {
		return nil, dns.RcodeNameError, true
	}
	return nil, 0, false
}

func (e *Endpoint) hasName(name string) bool {
	for _, n := range e.Names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	for _, n := range e.Aliases {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}
