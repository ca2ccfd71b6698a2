package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/berthrun/berth/netmgr"
	"github.com/berthrun/berth/scale"
)

// ProxyEnv chooses how published ports are served: "kernel", the default
// (nftables DNAT, falling back to the proxy for the ports the kernel path
// cannot serve, or for all when the kernel lacks nf_tables NAT) or
// "userspace" (the built-in proxy for every port). The supervisor reads it
// when it starts, from the environment of the command that started it.
const ProxyEnv = "BERTH_PROXY"

// PortsBPFEnv set to "0" turns off the fast path of the host's own TCP
// connections to published ports (netmgr.PortRedirect): nftables then
// serves them too, as it serves everyone else.
const PortsBPFEnv = "BERTH_PORTS_BPF"

// front is what serves one published port: the userspace proxy
// (*scale.Proxy) or a kernelPort.
type front interface {
	Start(ctx context.Context) error
	Addr() net.Addr
	SetBackends([]scale.Backend)
	Close() error
	Conns(id string) int
}

// portMode returns whether ProxyEnv asks for the kernel path.
func portMode() (kernel bool, err error) {
	switch v := os.Getenv(ProxyEnv); v {
	case "", "kernel":
		return true, nil
	case "userspace":
		return false, nil
	default:
		return true, fmt.Errorf("%s=%q: want kernel or userspace", ProxyEnv, v)
	}
}

// kernelPorts is the supervisor's table of ports served in the kernel. The
// whole table is written again at every change: one batch, applied whole,
// and open connections live on in conntrack whatever the table says.
type kernelPorts struct {
	mu    sync.Mutex
	table string
	ports map[*kernelPort]bool
	err   error // the last write's failure, logged once
	logf  func(string, ...any)

	// redirect is the fast path, attached while there is a port to serve;
	// noRedirect says it is turned off or could not be had (logged once).
	redirect   *netmgr.PortRedirect
	noRedirect bool
	redirErr   error
	// netns is the cookie of the host's network namespace, taken when the
	// supervisor starts: a later caller's thread might have entered a
	// container's.
	netns    uint64
	netnsErr error
}

func newKernelPorts(projectDir string, logf func(string, ...any)) *kernelPorts {
	sum := sha256.Sum256([]byte(projectDir))
	k := &kernelPorts{table: netmgr.PortTablePrefix + hex.EncodeToString(sum[:6]),
		ports: map[*kernelPort]bool{}, logf: logf, noRedirect: os.Getenv(PortsBPFEnv) == "0"}
	if !k.noRedirect {
		k.netns, k.netnsErr = netmgr.NetnsCookie()
	}
	return k
}

// openRedirect attaches the fast path to the cgroup2 root for the
// connections of the supervisor's own network namespace, the host's.
// Without it nothing is lost: nftables serves those connections too.
func (k *kernelPorts) openRedirect() {
	err := k.netnsErr
	if err == nil {
		if root := netmgr.Cgroup2Mount(); root == "" {
			err = errors.New("no cgroup2 hierarchy is mounted")
		} else {
			k.redirect, err = netmgr.OpenPortRedirect(root, k.netns)
		}
	}
	if err != nil {
		k.noRedirect = true
		k.logf("published ports: the host's connections go through nftables, the BPF fast path is not available: %v", err)
	}
}

// syncLocked writes the table from the ports' current backends.
func (k *kernelPorts) syncLocked() {
	var list []netmgr.PublishedPort
	for p := range k.ports {
		list = append(list, p.spec)
	}
	// A stable order keeps `nft list` readable from one write to the next.
	slices.SortFunc(list, func(a, b netmgr.PublishedPort) int {
		if a.HostPort != b.HostPort {
			return int(a.HostPort) - int(b.HostPort)
		}
		if a.Protocol != b.Protocol {
			if a.Protocol < b.Protocol {
				return -1
			}
			return 1
		}
		return a.HostIP.Compare(b.HostIP)
	})
	// The fast path first: once the table no longer has a backend, the
	// host's connections do not reach it either.
	k.syncRedirectLocked(list)
	err := netmgr.SetPublishedPorts(k.table, list)
	if err != nil && (k.err == nil || k.err.Error() != err.Error()) {
		k.logf("published ports: %v", err)
	}
	k.err = err
}

// syncRedirectLocked points the fast path at the same backends as the
// table, attaching it with the first port and detaching it with the last,
// so that a project without ports leaves nothing in the kernel.
func (k *kernelPorts) syncRedirectLocked(list []netmgr.PublishedPort) {
	if len(list) == 0 {
		if k.redirect != nil {
			k.redirect.Close()
			k.redirect = nil
		}
		return
	}
	if k.redirect == nil && !k.noRedirect {
		k.openRedirect()
	}
	if k.redirect == nil {
		return
	}
	err := k.redirect.Set(list)
	if err != nil && (k.redirErr == nil || k.redirErr.Error() != err.Error()) {
		k.logf("published ports: %v", err)
	}
	k.redirErr = err
}

// remove deletes the table (the supervisor is exiting).
func (k *kernelPorts) remove() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.ports)
	if err := netmgr.RemovePublishedPorts(k.table); err != nil {
		k.logf("published ports: %v", err)
	}
	k.syncRedirectLocked(nil)
}

// kernelPort is one published port served by DNAT. It holds the host port
// with an ordinary socket, so that the port is checked and reserved as the
// proxy reserves it and nothing else on the host can take it; packets for
// it are translated before they could reach that socket. While the port
// has no backend there is no rule, and the socket answers: TCP
// connections are reset at once, UDP datagrams dropped.
type kernelPort struct {
	k    *kernelPorts
	spec netmgr.PublishedPort // under k.mu
	bind string

	ln net.Listener
	pc net.PacketConn
	wg sync.WaitGroup
}

func (k *kernelPorts) newPort(b PortBinding) *kernelPort {
	ip, _ := netip.ParseAddr(b.HostIP)
	return &kernelPort{k: k, spec: netmgr.PublishedPort{Protocol: b.Protocol, HostIP: ip, Target: uint16(b.Target)},
		bind: net.JoinHostPort(b.HostIP, fmt.Sprint(b.HostPort))}
}

// kernelServes says why the kernel path cannot serve a binding, or "".
func kernelServes(b PortBinding) string {
	if b.HostIP == "" {
		return ""
	}
	ip, err := netip.ParseAddr(b.HostIP)
	if err != nil || !ip.Is4() {
		return fmt.Sprintf("host address %s is not IPv4", b.HostIP)
	}
	return ""
}

func (p *kernelPort) Start(ctx context.Context) error {
	var lc net.ListenConfig
	var err error
	switch p.spec.Protocol {
	case "tcp":
		if p.ln, err = lc.Listen(ctx, "tcp4", p.bind); err != nil {
			return fmt.Errorf("publishing %s/tcp: %w", p.bind, err)
		}
		p.spec.HostPort = uint16(p.ln.Addr().(*net.TCPAddr).Port)
		p.wg.Add(1)
		go p.refuse()
	case "udp":
		if p.pc, err = lc.ListenPacket(ctx, "udp4", p.bind); err != nil {
			return fmt.Errorf("publishing %s/udp: %w", p.bind, err)
		}
		p.spec.HostPort = uint16(p.pc.LocalAddr().(*net.UDPAddr).Port)
		p.wg.Add(1)
		go p.discard()
	default:
		return fmt.Errorf("protocol %q is not supported", p.spec.Protocol)
	}
	p.k.mu.Lock()
	p.k.ports[p] = true
	p.k.mu.Unlock()
	return nil
}

// refuse resets the connections that reach the held socket: only those
// that came while the port had no backend.
func (p *kernelPort) refuse() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

func (p *kernelPort) discard() {
	defer p.wg.Done()
	buf := make([]byte, 2048)
	for {
		if _, _, err := p.pc.ReadFrom(buf); errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

func (p *kernelPort) Addr() net.Addr {
	if p.ln != nil {
		return p.ln.Addr()
	}
	return p.pc.LocalAddr()
}

// SetBackends points the port at the healthy backends, as the proxy
// chooses among them for a new connection.
func (p *kernelPort) SetBackends(list []scale.Backend) {
	var addrs []netip.Addr
	for _, b := range list {
		if !b.Healthy {
			continue
		}
		ap, err := netip.ParseAddrPort(b.Addr)
		if err != nil || !ap.Addr().Is4() {
			continue
		}
		addrs = append(addrs, ap.Addr())
	}
	p.k.mu.Lock()
	defer p.k.mu.Unlock()
	if !p.k.ports[p] || slices.Equal(addrs, p.spec.Backends) && p.k.err == nil && p.k.redirErr == nil {
		return
	}
	old := p.spec.Backends
	p.spec.Backends = addrs
	p.k.syncLocked()
	if p.spec.Protocol != "udp" || p.k.err != nil {
		return
	}
	var forget []netip.Addr
	if len(old) == 0 {
		forget = append(forget, netip.Addr{}) // flows to the held socket
	}
	for _, a := range old {
		if !slices.Contains(addrs, a) {
			forget = append(forget, a)
		}
	}
	for _, a := range forget {
		if err := netmgr.ForgetUDPFlows(p.spec.HostPort, a); err != nil {
			p.k.logf("published port %d/udp: %v", p.spec.HostPort, err)
		}
	}
}

func (p *kernelPort) Close() error {
	p.k.mu.Lock()
	if p.k.ports[p] {
		delete(p.k.ports, p)
		p.k.syncLocked()
	}
	p.k.mu.Unlock()
	var err error
	if p.ln != nil {
		err = p.ln.Close()
	}
	if p.pc != nil {
		err = p.pc.Close()
	}
	p.wg.Wait()
	return err
}

// Conns is 0: connections translated in the kernel are conntrack's, and
// a replica leaving keeps them for as long as it runs.
func (p *kernelPort) Conns(string) int { return 0 }

// kernelConns counts the TCP connections a leaving replica still has on the
// target ports of the service's kernel-served ports: conntrack keeps them
// going to it, and draining waits for them as it waits for the proxy's.
// They are read from the sockets in the container's own namespace, where
// the host's connections that the fast path sent there without NAT are
// counted as well.
func (s *Supervisor) kernelConns(r Record) int {
	if s.kports == nil || r.State.Pid == 0 {
		return 0
	}
	targets := map[uint16]bool{}
	s.ports.mu.Lock()
	for _, p := range s.ports.pubs {
		if _, ok := p.proxy.(*kernelPort); ok && p.binding.Protocol == "tcp" && p.service == r.Service &&
			(p.container == "" || p.container == r.ID) {
			targets[uint16(p.binding.Target)] = true
		}
	}
	s.ports.mu.Unlock()
	if len(targets) == 0 {
		return 0
	}
	n := 0
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", r.State.Pid, f))
		if err != nil {
			continue
		}
		n += establishedOn(string(b), targets)
	}
	return n
}

// establishedOn counts the lines of a /proc/net/tcp table that are
// established connections on one of the local ports.
func establishedOn(table string, ports map[uint16]bool) int {
	n := 0
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "01" { // TCP_ESTABLISHED
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err == nil && ports[uint16(p)] {
			n++
		}
	}
	return n
}
