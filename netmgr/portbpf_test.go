package netmgr

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// dialEnv makes the test binary a client in a cgroup: "dir addr count
// [local]" joins the cgroup2 directory dir, connects count times to addr
// (from the address local, when given) and prints what each connection
// read and its peer's address.
const dialEnv = "BERTH_NETMGR_DIAL"

func dialFromCgroup(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 3 && len(f) != 4 {
		fmt.Fprintln(os.Stderr, "bad dial spec", spec)
		return 2
	}
	if err := os.WriteFile(filepath.Join(f[0], "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	n, _ := strconv.Atoi(f[2])
	d := net.Dialer{Timeout: 2 * time.Second}
	if len(f) == 4 {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(f[3])}
	}
	for range n {
		c, err := d.Dial("tcp4", f[1])
		if err != nil {
			fmt.Println("error", err)
			continue
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Println(strings.TrimSpace(line), c.RemoteAddr())
		c.Close()
	}
	return 0
}

// serveName answers every connection on addr with name.
func serveName(t *testing.T, addr, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, name)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// dialIn runs n connections to addr from a process in the cgroup dir and
// returns "answer peer" per connection.
func dialIn(t *testing.T, dir, addr string, n int, local ...string) []string {
	t.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %s", dialEnv, dir, addr, n, strings.Join(local, "")))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client: %v: %s", err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// TestPortRedirect loads the fast path, attaches it to a cgroup of its own
// and checks, from a client in that cgroup, that connections to the
// published address go to the backends in turn with the published address
// as their peer, that a change of backends takes effect for the next
// connection, that other namespaces are left alone and that closing leaves
// no program behind.
func TestPortRedirect(t *testing.T) {
	needSandbox(t)
	root := Cgroup2Mount()
	if root == "" {
		t.Skip("no cgroup2 hierarchy")
	}
	cookie, err := NetnsCookie()
	if err != nil {
		t.Skip(err)
	}
	dir := filepath.Join(root, fmt.Sprintf("berth-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing the test cgroup: %v", err)
		}
	})

	published := serveName(t, "127.0.0.1:0", "nat")
	target := serveName(t, "127.0.0.2:0", "b2")
	serveName(t, fmt.Sprintf("127.0.0.3:%d", target), "b3")
	serveName(t, fmt.Sprintf("127.0.0.4:%d", target), "b4")
	pub := fmt.Sprintf("127.0.0.1:%d", published)
	port := PublishedPort{Protocol: "tcp", HostPort: uint16(published), Target: uint16(target),
		Backends: []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"),
			netip.MustParseAddr("127.0.0.4")}}

	r, err := OpenPortRedirect(dir, cookie)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("%+v", ve)
		}
		t.Fatal(err)
	}
	var ids []ebpf.ProgramID
	for _, p := range r.progs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		ids = append(ids, id)
	}
	defer r.Close()
	if err := r.Set([]PublishedPort{port}); err != nil {
		t.Fatal(err)
	}
	got := dialIn(t, dir, pub, 6)
	want := []string{"b2 " + pub, "b3 " + pub, "b4 " + pub, "b2 " + pub, "b3 " + pub, "b4 " + pub}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("round robin over three backends:\n got %q\nwant %q", got, want)
	}
	// A socket bound to an address is left to NAT.
	if got := dialIn(t, dir, pub, 1, "127.0.0.1"); got[0] != "nat "+pub {
		t.Errorf("bound to 127.0.0.1: %q", got)
	}
	// This process is not in the cgroup: its connections take the normal path.
	if c, err := net.Dial("tcp4", pub); err != nil {
		t.Fatal(err)
	} else {
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.TrimSpace(line) != "nat" {
			t.Errorf("outside the cgroup: answered by %q", line)
		}
	}

	// A second owner's programs on the same cgroup (another project's
	// supervisor) serve its own port, one published on a given address,
	// and leave the first one's alone.
	second, err := OpenPortRedirect(dir, cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	port5 := serveName(t, "127.0.0.5:0", "nat5")
	if err := second.Set([]PublishedPort{{Protocol: "tcp", HostIP: netip.MustParseAddr("127.0.0.5"), HostPort: uint16(port5),
		Target: uint16(target), Backends: []netip.Addr{netip.MustParseAddr("127.0.0.3")}}}); err != nil {
		t.Fatal(err)
	}
	pub5 := fmt.Sprintf("127.0.0.5:%d", port5)
	if got := dialIn(t, dir, pub5, 2); strings.Join(got, "|") != "b3 "+pub5+"|b3 "+pub5 {
		t.Errorf("the second owner's port: %q", got)
	}
	if got := dialIn(t, dir, pub, 3); strings.Join(got, "|") != "b2 "+pub+"|b3 "+pub+"|b4 "+pub {
		t.Errorf("the first owner's port beside the second's: %q", got)
	}
	// The port is published on 127.0.0.5 only: 127.0.0.1 is not redirected.
	if l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port5)); err == nil {
		l.Close() // nothing listens there: the connection is refused
		if got := dialIn(t, dir, fmt.Sprintf("127.0.0.1:%d", port5), 1); !strings.HasPrefix(got[0], "error") {
			t.Errorf("127.0.0.1 on a port published on 127.0.0.5: %q", got)
		}
	}
	second.Close()

	port.Backends = port.Backends[2:]
	if err := r.Set([]PublishedPort{port}); err != nil {
		t.Fatal(err)
	}
	if got := dialIn(t, dir, pub, 2); strings.Join(got, "|") != "b4 "+pub+"|b4 "+pub {
		t.Errorf("one backend left: %q", got)
	}
	if err := r.Set(nil); err != nil {
		t.Fatal(err)
	}
	if got := dialIn(t, dir, pub, 1); got[0] != "nat "+pub {
		t.Errorf("no port: %q", got)
	}
	r.Close()

	// Another network namespace's cookie: nothing is redirected.
	other, err := OpenPortRedirect(dir, cookie+1)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Set([]PublishedPort{port}); err != nil {
		t.Fatal(err)
	}
	if got := dialIn(t, dir, pub, 1); got[0] != "nat "+pub {
		t.Errorf("another namespace's connection: %q", got)
	}
	other.Close()

	// The kernel frees closed programs after a grace period.
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				break
			}
			p.Close()
			if time.Now().After(deadline) {
				t.Errorf("program %d still loaded after Close", id)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
