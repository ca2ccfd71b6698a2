package bench

import (
	"fmt"
	"os"
	"testing"

	rt "github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/tests/harness"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// sandboxEnv is the variable harness.Main sets in the copy of the test
// binary it runs in the private namespaces.
const sandboxEnv = "BERTH_TEST_SANDBOX"

// TestMain runs the package in a private network and mount namespace (the
// outer half is harness.Main's), serves libcontainer's "init" re-exec for
// the start benchmark, and prints the summary table after the benchmarks.
func TestMain(m *testing.M) {
	// libcontainer re-executes /proc/self/exe as "<exe> init" inside a new
	// container; that must come before anything else.
	if len(os.Args) > 1 && os.Args[1] == "init" {
		rt.Init()
	}
	if os.Getenv(sandboxEnv) != "1" {
		harness.Main(m) // runs this binary again in the sandbox and exits
		return
	}
	if err := enterSandbox(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
	version := berthVersion() // of the binary under test, before anyone rebuilds it
	code := m.Run()
	recordFloors()
	printTable(os.Stdout, version)
	os.Exit(code)
}

// enterSandbox is the inner half of harness.Main: mounts made here stay
// here, and the new network namespace gets its loopback up.
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
