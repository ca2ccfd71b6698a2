// Package scale is what scaling a service takes: replica planning (which
// replicas stay, go and are created, and their numbers; replicas.go) and
// the round-robin L4 proxy that publishes the replicas' ports on the host.
package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of a PortSpec's durations when they are left zero.
const (
	// DefaultDrainGrace matches compose's default stop_grace_period.
	DefaultDrainGrace = 10 * time.Second
	// DefaultDialTimeout bounds one connection attempt to a backend; a
	// replica that does not answer within it is skipped for the next one.
	DefaultDialTimeout = 2 * time.Second
	// DefaultUDPIdleTimeout ends a UDP session with no datagram either way.
	DefaultUDPIdleTimeout = 30 * time.Second
)

var (
	// ErrPortAllocated is matched by the error of Start when another socket
	// holds the address and port.
	ErrPortAllocated = errors.New("port is already allocated")
	// ErrNoSuchBackend is returned by Drain for an ID the proxy does not know.
	ErrNoSuchBackend = errors.New("no such backend")
	// ErrProxyClosed is returned by Start after Close.
	ErrProxyClosed = errors.New("proxy closed")
)

// PortSpec describes one published port of a service.
type PortSpec struct {
	Protocol string // "tcp" (also when empty) or "udp"
	HostIP   string // address to bind; "" binds every address, as docker's 0.0.0.0
	HostPort int    // 0 lets the kernel pick a free port, as docker does for "- 80"
	Name     string // prefixes errors and log lines, e.g. "web 8080:80/tcp"

	// DrainGrace is how long the connections of a backend removed by
	// SetBackends may continue before they are closed (stop_grace_period).
	// Zero means DefaultDrainGrace.
	DrainGrace time.Duration
	// DialTimeout bounds one connection attempt to a backend. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// UDPIdleTimeout ends a UDP session after this long without a datagram in
	// either direction. Zero means DefaultUDPIdleTimeout.
	UDPIdleTimeout time.Duration
	// MaxConns bounds the TCP connections proxied at once; more are reset
	// as soon as they are accepted. Zero means DefaultMaxConns().
	MaxConns int
	// Logger receives dial failures and accept errors; nil discards them.
	Logger *slog.Logger
}

// fdsPerConn is what one proxied TCP connection holds: the client's and the
// backend's sockets and a pipe (two descriptors) for each direction.
const fdsPerConn = 6

// DefaultMaxConns is the per-port connection limit when PortSpec.MaxConns is
// zero: half of the process's descriptors, less a reserve of 1024 for
// everything else (containers' FIFOs, records, the API), so that one flooded
// port can neither exhaust the supervisor nor starve the other ports. With
// the usual hard limit of 20000 (which Go makes the soft limit) it is 1581.
func DefaultMaxConns() int {
	limit := 1024
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		limit = int(min(rl.Cur, 1<<20))
	}
	return max(64, (limit-1024)/2/fdsPerConn)
}

// Backend is one replica behind the proxy.
type Backend struct {
	ID      string // stable name of the replica, e.g. its container ID
	Addr    string // host:port the proxy connects to, e.g. "10.0.0.2:80"
	Healthy bool   // false: no new connections; the open ones go on
	// Run names the replica's current run (its start time, say); a new
	// value means it was restarted: its connections from the run before
	// went to a process that has ended, and are closed after DrainGrace.
	Run string
}

// BackendStats is the proxy's view of one backend, for status and tests.
type BackendStats struct {
	ID       string
	Addr     string
	Healthy  bool
	Draining bool   // removed or drained: no new connections
	Conns    int    // open TCP connections or UDP sessions
	Total    uint64 // TCP connections and UDP sessions ever sent to it
}

// BindError is the error of Start when the listening socket cannot be bound.
// Its message follows docker's: "Bind for 0.0.0.0:8080 failed: port is
// already allocated".
type BindError struct {
	Addr string // the address and port asked for, e.g. "0.0.0.0:8080"
	Err  error
}

func (e *BindError) Error() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return "Bind for " + e.Addr + " failed: " + ErrPortAllocated.Error()
	}
	// The errno alone: the *net.OpError around it repeats the address.
	var errno syscall.Errno
	if errors.As(e.Err, &errno) {
		return "Bind for " + e.Addr + " failed: " + errno.Error()
	}
	return "Bind for " + e.Addr + " failed: " + e.Err.Error()
}

func (e *BindError) Unwrap() []error {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return []error{ErrPortAllocated, e.Err}
	}
	return []error{e.Err}
}

// Proxy is the userspace L4 proxy of one published port: it accepts TCP
// connections or UDP datagrams on the host and spreads them round-robin over
// the usable backends. It knows only addresses, nothing of services.
type Proxy struct {
	spec   PortSpec
	log    *slog.Logger
	ctx    context.Context // cancelled by Close, ends dials in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept/read loops and per-connection goroutines

	active  atomic.Int64             // TCP connections accepted and not yet ended
	refused atomic.Uint64            // TCP connections reset over MaxConns
	limited atomic.Bool              // the last connection was refused: log once per streak
	sleep   func(time.Duration) bool // replaces pause in tests

	mu       sync.Mutex
	state    proxyState
	tcp      *net.TCPListener
	udp      *net.UDPConn
	addr     net.Addr
	order    []*backend          // the current set, in the order given
	byID     map[string]*backend // the set and the draining leftovers
	rr       RoundRobin
	sessions map[netip.AddrPort]*udpSession
}

type proxyState int

const (
	stateNew proxyState = iota
	stateStarted
	stateClosed
)

// flow is a proxied TCP connection or UDP session, owned by one backend.
type flow interface {
	close()
}

type backend struct {
	id, addr string
	healthy  bool
	inSet    bool // listed by the last SetBackends
	draining bool // no new flows
	expired  bool // the drain deadline passed: flows are closed at once
	drainGen int  // invalidates the timers of earlier drains
	timer    *time.Timer
	deadline time.Time
	pending  int          // dials in flight; keeps a removed record alive for them
	flows    map[flow]int // the run (epoch) each flow was made in
	run      string
	epoch    int // counts the runs seen
	total    uint64
}

func (b *backend) usable() bool {
	return b.inSet && b.healthy && !b.draining
}

// NewProxy returns a proxy for spec; Start binds it.
func NewProxy(spec PortSpec) *Proxy {
	if spec.DrainGrace <= 0 {
		spec.DrainGrace = DefaultDrainGrace
	}
	if spec.DialTimeout <= 0 {
		spec.DialTimeout = DefaultDialTimeout
	}
	if spec.UDPIdleTimeout <= 0 {
		spec.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	if spec.MaxConns <= 0 {
		spec.MaxConns = DefaultMaxConns()
	}
	log := spec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if spec.Name != "" {
		log = log.With("proxy", spec.Name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Proxy{
		spec:     spec,
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
		byID:     make(map[string]*backend),
		sessions: make(map[netip.AddrPort]*udpSession),
	}
}

// listenAddr returns the network and address to bind for spec, and the
// address as the user wrote it, for errors.
func listenAddr(spec PortSpec) (network, address, shown string, err error) {
	proto := spec.Protocol
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return "", "", "", fmt.Errorf("unsupported protocol %q", spec.Protocol)
	}
	if spec.HostPort < 0 || spec.HostPort > 65535 {
		return "", "", "", fmt.Errorf("invalid host port %d", spec.HostPort)
	}
	port := strconv.Itoa(spec.HostPort)
	if spec.HostIP == "" {
		// Both families, as docker publishes on 0.0.0.0 and [::]: Go binds
		// one dual-stack socket where the host has IPv6, else IPv4.
		return proto, net.JoinHostPort("", port), net.JoinHostPort("0.0.0.0", port), nil
	}
	ip, perr := netip.ParseAddr(spec.HostIP)
	if perr != nil || ip.Zone() != "" {
		return "", "", "", fmt.Errorf("invalid host IP %q", spec.HostIP)
	}
	ip = ip.Unmap()
	if ip.Is4() {
		network = proto + "4"
	} else {
		// tcp6/udp6 make Go set IPV6_V6ONLY: "::" means IPv6 only, as in docker.
		network = proto + "6"
	}
	address = net.JoinHostPort(ip.String(), port)
	return network, address, address, nil
}

// Start binds the listener and starts serving. A port held by another socket
// gives an error that matches ErrPortAllocated and names the address and port.
// ctx bounds the bind only; the proxy serves until Close.
func (p *Proxy) Start(ctx context.Context) error {
	err := p.start(ctx)
	if err != nil && p.spec.Name != "" {
		return fmt.Errorf("%s: %w", p.spec.Name, err)
	}
	return err
}

func (p *Proxy) start(ctx context.Context) error {
	network, address, shown, err := listenAddr(p.spec)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case stateStarted:
		return errors.New("proxy already started")
	case stateClosed:
		return ErrProxyClosed
	}
	var lc net.ListenConfig
	if strings.HasPrefix(network, "tcp") {
		ln, err := lc.Listen(ctx, network, address)
		if err != nil {
			return &BindError{Addr: shown, Err: err}
		}
		p.tcp = ln.(*net.TCPListener)
		p.addr = shownAddr(p.spec, p.tcp.Addr())
		p.wg.Add(1)
		go p.serveTCP(p.tcp)
	} else {
		pc, err := lc.ListenPacket(ctx, network, address)
		if err != nil {
			return &BindError{Addr: shown, Err: err}
		}
		p.udp = pc.(*net.UDPConn)
		p.addr = shownAddr(p.spec, p.udp.LocalAddr())
		p.wg.Add(1)
		go p.serveUDP(p.udp)
	}
	p.state = stateStarted
	return nil
}

// shownAddr reports an unspecified HostIP as 0.0.0.0, as docker does, even
// when the socket is a dual-stack [::].
func shownAddr(spec PortSpec, a net.Addr) net.Addr {
	if spec.HostIP != "" {
		return a
	}
	switch a := a.(type) {
	case *net.TCPAddr:
		return &net.TCPAddr{IP: net.IPv4zero, Port: a.Port}
	case *net.UDPAddr:
		return &net.UDPAddr{IP: net.IPv4zero, Port: a.Port}
	}
	return a
}

// Addr returns the bound address (a *net.TCPAddr or *net.UDPAddr) with the
// port the kernel picked when HostPort was 0; nil before Start.
func (p *Proxy) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Close stops listening, closes every proxied connection and session and
// waits for the proxy's goroutines to end. It may be called more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.state == stateClosed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.state = stateClosed
	var flows []flow
	for _, b := range p.byID {
		if b.timer != nil {
			b.timer.Stop()
		}
		for f := range b.flows {
			flows = append(flows, f)
		}
	}
	tcp, udp := p.tcp, p.udp
	p.mu.Unlock()

	p.cancel()
	var err error
	if tcp != nil {
		err = tcp.Close()
	}
	if udp != nil {
		err = udp.Close()
	}
	for _, f := range flows {
		f.close()
	}
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// SetBackends replaces the set of backends; the next new connection sees it.
// A backend left out starts draining: it gets no new connections and its open
// ones are closed after the PortSpec's DrainGrace unless they end before.
// A backend listed again while draining is back in service; with a new Run,
// its connections from before are closed after DrainGrace. Of IDs listed
// twice the first wins; a changed Addr applies to new connections only.
func (p *Proxy) SetBackends(list []Backend) {
	p.mu.Lock()
	defer p.mu.Unlock()
	listed := make(map[string]bool, len(list))
	order := make([]*backend, 0, len(list))
	for _, nb := range list {
		if listed[nb.ID] {
			continue
		}
		listed[nb.ID] = true
		b := p.byID[nb.ID]
		switch {
		case b == nil:
			b = &backend{id: nb.ID, run: nb.Run, flows: make(map[flow]int)}
			p.byID[nb.ID] = b
		case b.run != nb.Run:
			p.retireLocked(b)
			b.run = nb.Run
			if !b.inSet {
				p.undrainLocked(b)
			}
		case !b.inSet:
			// Removed earlier and listed again: cancel the drain. A Drain
			// on a listed backend stays until removal.
			p.undrainLocked(b)
		}
		b.addr = nb.Addr
		b.healthy = nb.Healthy
		b.inSet = true
		order = append(order, b)
	}
	for _, b := range p.order {
		if listed[b.id] {
			continue
		}
		b.inSet = false
		if !b.draining {
			p.drainLocked(b, p.spec.DrainGrace)
		}
		p.forgetLocked(b)
	}
	p.order = order
}

// Drain stops new connections to backend id and closes its open ones after
// grace unless they end before; a grace of zero or less closes them now.
// The backend stays drained until SetBackends removes it; an earlier deadline
// is kept.
func (p *Proxy) Drain(id string, grace time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.byID[id]
	if b == nil {
		return fmt.Errorf("drain %q: %w", id, ErrNoSuchBackend)
	}
	p.drainLocked(b, grace)
	p.forgetLocked(b)
	return nil
}

// drainLocked marks b draining and arms the deadline at which its flows are
// closed, keeping an earlier one.
func (p *Proxy) drainLocked(b *backend, grace time.Duration) {
	deadline := time.Now().Add(grace)
	if b.draining && !b.deadline.After(deadline) {
		return
	}
	b.draining = true
	b.deadline = deadline
	b.drainGen++
	if b.timer != nil {
		b.timer.Stop()
	}
	if grace <= 0 {
		b.timer = nil
		p.expireLocked(b)
		return
	}
	gen := b.drainGen
	b.timer = time.AfterFunc(grace, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if b.drainGen == gen && p.state != stateClosed {
			p.expireLocked(b)
		}
	})
}

// retireLocked starts a new run of b (a restarted replica): the flows of
// the runs before are closed at the deadline of the drain under way, or
// after DrainGrace. Without this, a replica restarted within its drain
// grace kept its earlier clients' half-closed connections for ever.
func (p *Proxy) retireLocked(b *backend) {
	b.epoch++
	if len(b.flows) == 0 {
		return
	}
	deadline := time.Now().Add(p.spec.DrainGrace)
	if b.draining && b.deadline.Before(deadline) {
		deadline = b.deadline
	}
	if b.expired {
		deadline = time.Now()
	}
	epoch := b.epoch
	time.AfterFunc(time.Until(deadline), func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.state == stateClosed {
			return
		}
		for f, e := range b.flows {
			if e < epoch {
				f.close()
			}
		}
	})
}

func (p *Proxy) undrainLocked(b *backend) {
	b.draining, b.expired = false, false
	b.drainGen++
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
}

// expireLocked closes every flow of b. Closing only unblocks the flows'
// goroutines, which detach themselves; it takes no lock.
func (p *Proxy) expireLocked(b *backend) {
	b.expired = true
	for f := range b.flows {
		f.close()
	}
}

// forgetLocked drops the record of a removed backend once nothing refers to it.
func (p *Proxy) forgetLocked(b *backend) {
	if b.inSet || len(b.flows) > 0 || b.pending > 0 {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if p.byID[b.id] == b {
		delete(p.byID, b.id)
	}
}

// candidates returns the usable backends in the order a new flow should try
// them: rotated by one on every call.
func (p *Proxy) candidates() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for _, b := range p.order {
		if b.usable() {
			ids = append(ids, b.id)
		}
	}
	return Rotate(&p.rr, ids)
}

// reserve returns backend id for a dial if it is still usable, counting the
// dial in flight so that the record outlives a removal meanwhile.
func (p *Proxy) reserve(id string) (*backend, string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.byID[id]
	if b == nil || !b.usable() || p.state == stateClosed {
		return nil, "", false
	}
	b.pending++
	return b, b.addr, true
}

// attach ends a reservation: with f non-nil it records the flow on b, and
// reports false if the flow must be closed instead (proxy closed, or b's
// drain deadline already passed).
func (p *Proxy) attach(b *backend, f flow) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.pending--
	if f == nil || p.state == stateClosed || b.expired {
		p.forgetLocked(b)
		return false
	}
	b.flows[f] = b.epoch
	b.total++
	return true
}

func (p *Proxy) detach(b *backend, f flow) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.detachLocked(b, f)
}

func (p *Proxy) detachLocked(b *backend, f flow) {
	delete(b.flows, f)
	p.forgetLocked(b)
}

// Conns returns the number of open TCP connections or UDP sessions to
// backend id, draining or not.
func (p *Proxy) Conns(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.byID[id]; b != nil {
		return len(b.flows)
	}
	return 0
}

// Stats returns the backends of the set in their order, then the draining
// ones that still have connections.
func (p *Proxy) Stats() []BackendStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []BackendStats
	add := func(b *backend) {
		out = append(out, BackendStats{
			ID: b.id, Addr: b.addr, Healthy: b.healthy, Draining: b.draining,
			Conns: len(b.flows), Total: b.total,
		})
	}
	for _, b := range p.order {
		add(b)
	}
	n := len(out)
	for _, b := range p.byID {
		if !b.inSet {
			add(b)
		}
	}
	slices.SortFunc(out[n:], func(a, b BackendStats) int { return strings.Compare(a.ID, b.ID) })
	return out
}
