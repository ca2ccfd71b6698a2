// Package vm boots Debian's kernels under qemu and runs berth in them, on
// a cgroup v2-only system, whatever the host's kernel and cgroup mode.
package vm

import (
	"os"
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// harness.Main gives the test its private namespaces and removes a berth
// it had to build; the VM has no NIC, so it never needs them itself. It
// needs root, without which the test skips instead.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	harness.Main(m)
}
