// Package vm boots Debian's kernels under qemu and runs berth in them, on
// a cgroup v2-only system, whatever the host's kernel and cgroup mode.
package vm

import (
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// harness.Main gives the test its private namespaces and removes a berth
// it had to build. The VM has no NIC, so it never needs them itself.
func TestMain(m *testing.M) { harness.Main(m) }
