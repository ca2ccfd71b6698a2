package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berthrun/berth/tests/debian"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const sandboxEnv = "BERTH_TEST_SANDBOX"

// Main runs a test package in a sandbox: the test binary is run again in a
// new network namespace (the "host" of the tests, with only lo) and a new
// mount namespace with private propagation. Bridges, veths, nftables rules,
// published ports and mounts made by berth stay in there, and whatever a
// crashed test leaves dies with it. Call it from TestMain.
func Main(m *testing.M) {
	if os.Getenv(sandboxEnv) == "1" {
		if err := enterSandbox(); err != nil {
			fmt.Fprintln(os.Stderr, "sandbox:", err)
			os.Exit(1)
		}
		code := m.Run()
		removeBuiltBinary()
		os.Exit(code)
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	// The namespace the tests leave stays reachable for what must fetch
	// from Debian's mirror (tests/debian's debootstrap).
	cmd.Env = append(os.Environ(), sandboxEnv+"=1", debian.HostNetnsEnv+"=/proc/"+strconv.Itoa(os.Getpid())+"/ns/net")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "end-to-end tests need root and namespaces:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func enterSandbox() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}

// links lists berth's bridges and veths in the sandbox's namespace.
func links() []string {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range ls {
		name := l.Attrs().Name
		if strings.HasPrefix(name, "brb-") || strings.HasPrefix(name, "vb") {
			out = append(out, "link "+name)
		}
	}
	return out
}

// nftTables lists berth's nftables tables in the sandbox's namespace.
func nftTables() []string {
	c, err := nftables.New()
	if err != nil {
		return []string{"nftables: " + err.Error()}
	}
	tables, err := c.ListTables()
	if err != nil {
		return []string{"nftables: " + err.Error()}
	}
	var left []string
	for _, t := range tables {
		if strings.Contains(t.Name, "berth") {
			left = append(left, "nftables table "+t.Name)
		}
	}
	return left
}
