package netmgr

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The tests that touch the kernel run in a sandbox: TestMain runs the test
// binary again in a new network namespace (the "host" of these tests) and
// a new mount namespace with private propagation, so neither bridges and
// nft tables nor netns bind mounts can reach the real host, and whatever a
// crashed test leaves dies with the process.
const sandboxEnv = "BERTH_NETMGR_SANDBOX"

// sandboxed is "" when the process runs in the sandbox, or why not.
var sandboxed = "not started"

func TestMain(m *testing.M) {
	if spec := os.Getenv(dialEnv); spec != "" {
		os.Exit(dialFromCgroup(spec))
	}
	if os.Getenv(sandboxEnv) == "1" {
		if err := enterSandbox(); err != nil {
			sandboxed = err.Error()
		} else {
			sandboxed = ""
		}
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		sandboxed = "needs root"
		os.Exit(m.Run())
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), sandboxEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		// No namespaces to be had: run what can run without them.
		sandboxed = "cannot re-exec in new namespaces: " + err.Error()
		os.Exit(m.Run())
	}
	os.Exit(0)
}

func enterSandbox() error {
	// Mounts made here must not propagate back to the host's namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}

// needSandbox skips a test that creates kernel objects unless it runs in
// the private namespaces, and checks afterwards that it left none.
func needSandbox(t *testing.T) {
	t.Helper()
	if sandboxed != "" {
		t.Skip("kernel test outside the sandbox:", sandboxed)
	}
	t.Cleanup(func() { assertClean(t) })
}

// assertClean fails if a berth bridge, veth or nft table is left in the
// sandbox's namespace.
func assertClean(t *testing.T) {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		name := l.Attrs().Name
		if strings.HasPrefix(name, bridgePrefix) || strings.HasPrefix(name, "vb") {
			t.Errorf("left behind: link %s (%s)", name, l.Type())
		}
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatalf("listing nftables tables: %v", err)
	}
	for _, tb := range tables {
		if strings.Contains(tb.Name, "berth") {
			t.Errorf("left behind: nftables table %s", tb.Name)
		}
	}
}

// nftObjects counts the rules in the berth table's chains and the elements
// of its maps: what a network adds and its removal must take away.
func nftObjects(t *testing.T) int {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(tables, func(tb *nftables.Table) bool { return tb.Name == nftTable }) {
		return 0
	}
	table := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ch := range chains {
		if ch.Table.Name != nftTable {
			continue
		}
		rules, err := c.GetRules(table, ch)
		if err != nil {
			t.Fatalf("rules of %s: %v", ch.Name, err)
		}
		n += len(rules)
	}
	sets, err := c.GetSets(table)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		elems, err := c.GetSetElements(s)
		if err != nil {
			t.Fatalf("elements of %s: %v", s.Name, err)
		}
		n += len(elems)
	}
	return n
}

// newNS makes a netns file in the test's temporary directory and removes
// it at the end.
func newNS(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := NewNetNS(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := RemoveNetNS(p); err != nil {
			t.Error(err)
		}
	})
	return p
}

// inNS runs fn on a thread switched into the namespace at path. Sockets fn
// opens stay in that namespace after it returns.
func inNS(t *testing.T, path string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			done <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			done <- err
			return
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					done <- fmt.Errorf("panic: %v", r)
				}
			}()
			fn()
		}()
		if err := netns.Set(orig); err != nil {
			done <- err // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// listenIn opens a TCP listener inside a namespace and serves it from the
// test's process: each connection gets "hello <remote ip>\n".
func listenIn(t *testing.T, path, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	var err error
	inNS(t, path, func() { l, err = net.Listen("tcp4", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			fmt.Fprintf(c, "hello %s\n", host)
			c.Close()
		}
	}()
	return l
}
