package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/scale"
)

// PortBinding is one published port as `ps` and `port` show it.
type PortBinding struct {
	HostIP   string `json:"host_ip"`
	HostPort int    `json:"host_port"`
	Target   uint32 `json:"target"`
	Protocol string `json:"protocol"`
}

func (b PortBinding) String() string {
	return fmt.Sprintf("%s->%d/%s", b.hostAddr(), b.Target, b.Protocol)
}

// hostAddr is the binding's host side: 0.0.0.0:8080 when no address is set.
func (b PortBinding) hostAddr() string {
	ip := b.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	return fmt.Sprintf("%s:%d", ip, b.HostPort)
}

// publisher is one published port, served by the built-in proxy or in the
// kernel: for a port with a fixed host port, one per service in front of
// all its replicas; for a container-only port ("- 80"), one per container
// on a random host port.
type publisher struct {
	proxy     front
	binding   PortBinding
	service   string
	container string // "" for a service-wide listener
}

// ports is the supervisor's set of publishers.
type ports struct {
	mu   sync.Mutex
	pubs map[string]*publisher // by key()
}

func pubKey(service, container string, b PortBinding) string {
	return fmt.Sprintf("%s/%s/%s/%s/%d/%d", service, container, b.Protocol, b.HostIP, b.HostPort, b.Target)
}

// expandPorts turns a service's ports into bindings; a published range
// maps onto a target range of the same length, or every host port of the
// range onto one target.
func expandPorts(svc *model.Service) ([]PortBinding, error) {
	var out []PortBinding
	for _, p := range svc.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("service %q: protocol %q is not supported", svc.Name, proto)
		}
		if p.Published == "" {
			out = append(out, PortBinding{HostIP: p.HostIP, Target: p.Target, Protocol: proto})
			continue
		}
		lo, hi, err := portRange(p.Published)
		if err != nil {
			return nil, fmt.Errorf("service %q: published port %q: %w", svc.Name, p.Published, err)
		}
		for hp := lo; hp <= hi; hp++ {
			out = append(out, PortBinding{HostIP: p.HostIP, HostPort: hp, Target: p.Target, Protocol: proto})
		}
	}
	return out, nil
}

func portRange(s string) (int, int, error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(a)
	if err != nil || lo <= 0 || lo > 65535 {
		return 0, 0, errors.New("not a port number")
	}
	if !isRange {
		return lo, lo, nil
	}
	hi, err := strconv.Atoi(b)
	if err != nil || hi < lo || hi > 65535 {
		return 0, 0, errors.New("not a port range")
	}
	return lo, hi, nil
}

// publishService binds the service-wide listeners of svc's fixed host ports
// that are not bound yet. It is done before any container is created, so
// that a taken port fails `up` with nothing left half-made; the listeners
// it opened are returned so that a later failure can close them.
func (s *Supervisor) publishService(ctx context.Context, svc *model.Service) ([]string, error) {
	bindings, err := expandPorts(svc)
	if err != nil {
		return nil, err
	}
	var opened []string
	for _, b := range bindings {
		if b.HostPort == 0 {
			continue // per container, at create
		}
		key := pubKey(svc.Name, "", b)
		s.ports.mu.Lock()
		_, ok := s.ports.pubs[key]
		s.ports.mu.Unlock()
		if ok {
			continue
		}
		if err := s.openPublisher(ctx, key, svc.Name, "", b, svc.StopGracePeriod); err != nil {
			s.closePublishers(opened)
			return nil, err
		}
		opened = append(opened, key)
	}
	return opened, nil
}

// publishContainer binds the random host ports of a new container's
// container-only ports.
func (s *Supervisor) publishContainer(ctx context.Context, svc *model.Service, r *Record) error {
	bindings, err := expandPorts(svc)
	if err != nil {
		return err
	}
	for _, b := range bindings {
		if b.HostPort != 0 {
			r.Ports = append(r.Ports, b)
			continue
		}
		key := pubKey(svc.Name, r.ID, b)
		if err := s.openPublisher(ctx, key, svc.Name, r.ID, b, svc.StopGracePeriod); err != nil {
			return err
		}
		s.ports.mu.Lock()
		r.Ports = append(r.Ports, s.ports.pubs[key].binding)
		s.ports.mu.Unlock()
	}
	return nil
}

func (s *Supervisor) openPublisher(ctx context.Context, key, service, ctr string, b PortBinding, grace time.Duration) error {
	var p front
	if s.kports != nil {
		if why := kernelServes(b); why != "" {
			s.logf("service %s: publishing %s through the userspace proxy: %s", service, b, why)
		} else {
			p = s.kports.newPort(b)
		}
	}
	if p == nil {
		// A replica scaled away keeps its open connections for its grace period.
		p = scale.NewProxy(scale.PortSpec{Protocol: b.Protocol, HostIP: b.HostIP, HostPort: b.HostPort,
			Name: "service " + service, DrainGrace: grace, MaxConns: s.maxConns, Logger: s.proxyLog})
	}
	if err := p.Start(ctx); err != nil {
		if other := s.publishedBy(b); other != "" && other != service {
			return fmt.Errorf("service %q: host port %s is already published by service %q", service, b.hostAddr()+"/"+b.Protocol, other)
		}
		return fmt.Errorf("service %q: %w", service, err)
	}
	if b.HostPort == 0 {
		if a, ok := p.Addr().(*net.TCPAddr); ok {
			b.HostPort = a.Port
		} else if a, ok := p.Addr().(*net.UDPAddr); ok {
			b.HostPort = a.Port
		}
	}
	s.ports.mu.Lock()
	s.ports.pubs[key] = &publisher{proxy: p, binding: b, service: service, container: ctr}
	s.ports.mu.Unlock()
	return nil
}

// publishedBy names the service of this project whose fixed host port is
// b's (same address, port and protocol), or "".
func (s *Supervisor) publishedBy(b PortBinding) string {
	if b.HostPort == 0 {
		return ""
	}
	s.ports.mu.Lock()
	defer s.ports.mu.Unlock()
	for _, p := range s.ports.pubs {
		o := p.binding
		if o.HostPort == b.HostPort && o.Protocol == b.Protocol && (o.HostIP == b.HostIP || o.HostIP == "" || b.HostIP == "") {
			return p.service
		}
	}
	return ""
}

func (s *Supervisor) closePublishers(keys []string) {
	s.ports.mu.Lock()
	defer s.ports.mu.Unlock()
	for _, k := range keys {
		if p, ok := s.ports.pubs[k]; ok {
			_ = p.proxy.Close()
			delete(s.ports.pubs, k)
		}
	}
}

// unpublishContainer closes a container's own listeners.
func (s *Supervisor) unpublishContainer(id string) {
	s.ports.mu.Lock()
	defer s.ports.mu.Unlock()
	for k, p := range s.ports.pubs {
		if p.container == id {
			_ = p.proxy.Close()
			delete(s.ports.pubs, k)
		}
	}
}

// unpublishGone closes the listeners of containers that no longer exist
// and of services that have no container left.
func (s *Supervisor) unpublishGone() {
	alive := map[string]bool{}
	services := map[string]bool{}
	for _, c := range s.list() {
		alive[c.rec.ID] = true
		services[c.rec.Service] = true
	}
	s.ports.mu.Lock()
	defer s.ports.mu.Unlock()
	for k, p := range s.ports.pubs {
		if p.container != "" && !alive[p.container] || p.container == "" && !services[p.service] {
			_ = p.proxy.Close()
			delete(s.ports.pubs, k)
		}
	}
}

// republish reopens, after adoption, the listeners that the previous
// supervisor held, on the host ports its records name.
func (s *Supervisor) republish(ctx context.Context) {
	for _, c := range s.list() {
		r := c.record()
		if len(r.Ports) == 0 {
			continue
		}
		bindings, _ := expandPorts(&r.Config)
		for _, b := range r.Ports {
			ctr := ""
			for _, want := range bindings {
				if want.HostPort == 0 && want.Target == b.Target && want.Protocol == b.Protocol && want.HostIP == b.HostIP {
					ctr = r.ID
				}
			}
			key := pubKey(r.Service, ctr, b)
			if ctr != "" {
				key = pubKey(r.Service, ctr, PortBinding{HostIP: b.HostIP, Target: b.Target, Protocol: b.Protocol})
			}
			s.ports.mu.Lock()
			_, ok := s.ports.pubs[key]
			s.ports.mu.Unlock()
			if ok {
				continue
			}
			if err := s.openPublisher(ctx, key, r.Service, ctr, b, r.Config.StopGracePeriod); err != nil {
				s.logf("container %s: publishing %s again: %v", r.Name, b, err)
			}
		}
	}
}

// refreshBackends points every listener at the replicas that run and are
// not unhealthy: a service-wide listener at all of them, a container's own
// listener at that container.
func (s *Supervisor) refreshBackends() {
	type target struct {
		id, service string
		healthy     bool
		ip          string
		run         string
		oneOff      bool // run: only its own listeners
	}
	var targets []target
	for _, c := range s.list() {
		r := c.record()
		if r.State.Status != StatusRunning || len(r.Endpoints) == 0 || c.isLeaving() {
			continue
		}
		targets = append(targets, target{id: r.ID, service: r.Service, ip: r.Endpoints[0].IP.String(), healthy: r.State.Health != "unhealthy",
			run: r.State.StartedAt.Format(time.RFC3339Nano), oneOff: isOneOff(r.Labels)})
	}
	s.ports.mu.Lock()
	defer s.ports.mu.Unlock()
	for _, p := range s.ports.pubs {
		var backends []scale.Backend
		for _, t := range targets {
			if t.service != p.service || p.container != "" && p.container != t.id || p.container == "" && t.oneOff {
				continue
			}
			backends = append(backends, scale.Backend{ID: t.id, Addr: net.JoinHostPort(t.ip, strconv.Itoa(int(p.binding.Target))), Healthy: t.healthy, Run: t.run})
		}
		sort.Slice(backends, func(i, j int) bool { return backends[i].ID < backends[j].ID })
		p.proxy.SetBackends(backends)
	}
}

// closeAllPublishers stops every listener (the supervisor is exiting).
func (s *Supervisor) closeAllPublishers() {
	s.ports.mu.Lock()
	defer s.ports.mu.Unlock()
	for k, p := range s.ports.pubs {
		_ = p.proxy.Close()
		delete(s.ports.pubs, k)
	}
	if s.kports != nil {
		s.kports.remove()
	}
}

// proxiedConns counts the TCP connections the proxies hold open to a
// container (UDP sessions only end by going idle: they are not waited for).
func (s *Supervisor) proxiedConns(id string) int {
	s.ports.mu.Lock()
	defer s.ports.mu.Unlock()
	n := 0
	for _, p := range s.ports.pubs {
		if p.binding.Protocol == "tcp" {
			n += p.proxy.Conns(id)
		}
	}
	return n
}

// MaxConnsEnv overrides the per-port connection limit of the proxy
// (scale.DefaultMaxConns). The supervisor reads it when it starts, from the
// environment of the command that started it.
const MaxConnsEnv = "BERTH_PROXY_MAX_CONNS"

// proxyMaxConns returns the per-port connection limit MaxConnsEnv asks
// for, or 0 for the proxy's default.
func proxyMaxConns() (int, error) {
	v := os.Getenv(MaxConnsEnv)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive number of connections", MaxConnsEnv, v)
	}
	return n, nil
}
