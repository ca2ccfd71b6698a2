package netmgr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// PortRedirect is the fast path of published ports for the host's own TCP
// connections: two cgroup sock_addr programs attached to the root of the
// cgroup2 hierarchy. connect4 rewrites a connect to a published address
// into a connect to one of the port's backends, in turn, so that the
// socket talks to the container over the bridge with no NAT on any packet;
// getpeername4 gives such a socket its published address back as its peer.
// Everything else (UDP, other network namespaces, containers, addresses
// not in the map) is left to the nftables table, which serves every port
// on its own; this only takes the host's connections off it.
//
// The programs are held by bpf_links that are never pinned: when the
// process that opened them exits, however it exits, the kernel detaches
// them and frees their maps, and nftables goes on serving.
type PortRedirect struct {
	mu       sync.Mutex
	services *ebpf.Map // redirectKey -> redirectValue
	origins  *ebpf.Map // socket cookie -> the address it connected to
	progs    []*ebpf.Program
	links    []link.Link
	current  map[[8]byte][redirectValueSize]byte // what the services map holds
}

const (
	// maxRedirectBackends bounds a service's replicas on the fast path; a
	// port with more is left to nftables.
	maxRedirectBackends = 64
	// redirectValueSize: u64 counter, u32 backend count, u32 target port,
	// then the backends' addresses.
	redirectValueSize = 16 + 4*maxRedirectBackends
	// maxOrigins is how many connected sockets remember their published
	// address for getpeername. Entries are not removed when a socket
	// closes (socket cookies are never reused); the least recently used go
	// first, so only a connection older than that many newer ones would
	// see its backend's address as its peer.
	maxOrigins       = 16384
	maxRedirectPorts = 4096
)

// Offsets in struct bpf_sock_addr and struct bpf_sock (linux/bpf.h).
const (
	sockAddrUserIP4   = 4
	sockAddrUserPort  = 24
	sockAddrProtocol  = 36
	sockAddrSk        = 64
	bpfSockBoundDevIf = 0
	bpfSockSrcIP4     = 24
)

// atomicFetch is BPF_FETCH: the atomic add also returns the old value in
// its source register (asm has no constructor for it).
const atomicFetch = 0x01

// Cgroup2Mount returns where the cgroup2 hierarchy is mounted (the
// unified hierarchy of a hybrid host, or the only one), or "".
func Cgroup2Mount() string {
	ms, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup2"))
	if err != nil || len(ms) == 0 {
		return ""
	}
	// The shortest is the root, whatever else is mounted beneath it.
	best := ms[0].Mountpoint
	for _, m := range ms[1:] {
		if len(m.Mountpoint) < len(best) {
			best = m.Mountpoint
		}
	}
	return best
}

// NetnsCookie is the kernel's cookie for the calling thread's network
// namespace, as bpf_get_netns_cookie returns it.
func NetnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("SO_NETNS_COOKIE: %w", err)
	}
	return c, nil
}

// OpenPortRedirect loads the programs and attaches them to the cgroup2
// directory cgroup (the hierarchy's root, for the whole host), for the
// connections made in the network namespace whose cookie is netns.
// Programs of other owners on the same cgroup are kept (multi-attach).
func OpenPortRedirect(cgroup string, netns uint64) (_ *PortRedirect, err error) {
	r := &PortRedirect{current: map[[8]byte][redirectValueSize]byte{}}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if r.services, err = ebpf.NewMap(&ebpf.MapSpec{Name: "berth_ports", Type: ebpf.Hash,
		KeySize: 8, ValueSize: redirectValueSize, MaxEntries: maxRedirectPorts,
		// Without preallocation an update swaps in a new element and frees
		// the old one after readers are done, so a program never sees a
		// half-written list of backends.
		Flags: unix.BPF_F_NO_PREALLOC}); err != nil {
		return nil, fmt.Errorf("bpf map: %w", err)
	}
	if r.origins, err = ebpf.NewMap(&ebpf.MapSpec{Name: "berth_peers", Type: ebpf.LRUHash,
		KeySize: 8, ValueSize: 8, MaxEntries: maxOrigins}); err != nil {
		return nil, fmt.Errorf("bpf map: %w", err)
	}
	dir, err := os.Open(cgroup)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	for _, p := range []struct {
		attach ebpf.AttachType
		insns  asm.Instructions
	}{
		{ebpf.AttachCGroupInet4Connect, connect4(netns, r.services.FD(), r.origins.FD())},
		{ebpf.AttachCgroupInet4GetPeername, getpeername4(r.origins.FD())},
	} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "berth_ports", Type: ebpf.CGroupSockAddr,
			AttachType: p.attach, Instructions: p.insns, License: "Apache-2.0"})
		if err != nil {
			return nil, fmt.Errorf("bpf program %s: %w", p.attach, err)
		}
		r.progs = append(r.progs, prog)
		// A link and not a plain attach: a plain attach would outlive the
		// process and go on redirecting to backends nobody keeps current.
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: int(dir.Fd()), Program: prog, Attach: p.attach})
		if err != nil {
			return nil, fmt.Errorf("attaching %s to %s: %w", p.attach, cgroup, err)
		}
		r.links = append(r.links, l)
	}
	return r, nil
}

// connect4: for a TCP connect from the namespace netns by a socket not
// bound to an address, look the destination up in services; when found,
// remember it under the socket's cookie and connect to the next backend.
func connect4(netns uint64, services, origins int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, sockAddrProtocol, asm.Word),
		asm.JNE.Imm(asm.R2, unix.IPPROTO_TCP, "out"),
		// Containers connect from their own namespaces and keep NAT.
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetNetnsCookie.Call(),
		asm.LoadImm(asm.R2, int64(netns), asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R2, "out"),
		// A socket bound to an address (127.0.0.1, say) or to a device
		// (lo) could not reach the bridge from there: NAT serves it.
		asm.LoadMem(asm.R2, asm.R6, sockAddrSk, asm.DWord),
		asm.LoadMem(asm.R3, asm.R2, bpfSockSrcIP4, asm.Word),
		asm.JNE.Imm(asm.R3, 0, "out"),
		asm.LoadMem(asm.R3, asm.R2, bpfSockBoundDevIf, asm.Word),
		asm.JNE.Imm(asm.R3, 0, "out"),
		// key = {user_ip4, user_port}
		asm.LoadMem(asm.R2, asm.R6, sockAddrUserIP4, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R6, sockAddrUserPort, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, services),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.LoadMem(asm.R8, asm.R7, 8, asm.Word), // count
		asm.JEq.Imm(asm.R8, 0, "out"),
		asm.LoadMem(asm.R9, asm.R7, 12, asm.Word), // target port
		// r1 = counter++ (atomic), then r1 %= count
		asm.Mov.Imm(asm.R1, 1),
		withConstant(asm.StoreXAdd(asm.R7, asm.R1, asm.DWord), atomicFetch),
		asm.Mod.Reg(asm.R1, asm.R8),
		asm.JGE.Imm(asm.R1, maxRedirectBackends, "out"),
		asm.LSh.Imm(asm.R1, 2),
		asm.Add.Reg(asm.R7, asm.R1),
		asm.LoadMem(asm.R8, asm.R7, 16, asm.Word), // backend
		asm.JEq.Imm(asm.R8, 0, "out"),
		// origins[cookie] = {user_ip4, user_port}
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, -16, asm.R0, asm.DWord),
		asm.LoadMem(asm.R2, asm.R6, sockAddrUserIP4, asm.Word),
		asm.StoreMem(asm.RFP, -24, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R6, sockAddrUserPort, asm.Word),
		asm.StoreMem(asm.RFP, -20, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, origins),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -24),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
		asm.StoreMem(asm.R6, sockAddrUserIP4, asm.R8, asm.Word),
		asm.StoreMem(asm.R6, sockAddrUserPort, asm.R9, asm.Word),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	}
}

// getpeername4 reports the published address a redirected socket
// connected to.
func getpeername4(origins int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, origins),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.R6, sockAddrUserIP4, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R0, 4, asm.Word),
		asm.StoreMem(asm.R6, sockAddrUserPort, asm.R1, asm.Word),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	}
}

func withConstant(ins asm.Instruction, c int64) asm.Instruction {
	ins.Constant = c
	return ins
}

// Set makes the fast path serve exactly the TCP ports given, each to its
// current backends; a port with none (or too many) is left to nftables.
// Only the entries that changed are written, so a port's turn goes on
// where it was.
func (r *PortRedirect) Set(ports []PublishedPort) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := map[[8]byte][redirectValueSize]byte{}
	for _, p := range ports {
		if p.Protocol != "tcp" || len(p.Backends) == 0 || len(p.Backends) > maxRedirectBackends {
			continue
		}
		addr := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
			if !p.HostIP.Is4() {
				continue
			}
			addr = p.HostIP
		}
		var k [8]byte
		a := addr.As4()
		copy(k[:4], a[:])
		binary.NativeEndian.PutUint32(k[4:], portWord(p.HostPort))
		var v [redirectValueSize]byte
		binary.NativeEndian.PutUint32(v[8:], uint32(len(p.Backends)))
		binary.NativeEndian.PutUint32(v[12:], portWord(p.Target))
		for i, b := range p.Backends {
			if !b.Is4() {
				continue
			}
			a := b.As4()
			copy(v[16+4*i:], a[:])
		}
		want[k] = v
	}
	var errs []error
	for k := range r.current {
		if _, ok := want[k]; ok {
			continue
		}
		if err := r.services.Delete(k[:]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
			continue
		}
		delete(r.current, k)
	}
	for k, v := range want {
		if old, ok := r.current[k]; ok && old == v {
			continue
		}
		if err := r.services.Put(k[:], v[:]); err != nil {
			errs = append(errs, err)
			delete(r.current, k)
			continue
		}
		r.current[k] = v
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bpf map of published ports: %w", err)
	}
	return nil
}

// portWord is a port as struct bpf_sock_addr holds it: network byte order
// in the low 16 bits of a u32.
func portWord(p uint16) uint32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return uint32(binary.NativeEndian.Uint16(b[:]))
}

// Close detaches the programs and frees them and their maps.
func (r *PortRedirect) Close() {
	for _, l := range r.links {
		_ = l.Close()
	}
	for _, p := range r.progs {
		_ = p.Close()
	}
	if r.services != nil {
		_ = r.services.Close()
	}
	if r.origins != nil {
		_ = r.origins.Close()
	}
	r.links, r.progs, r.services, r.origins = nil, nil, nil, nil
}
