// Package chaos is berth's fault-injection suite: it kills the supervisor
// at every named step of create, start, restart, stop and remove (through
// the BERTH_FAULT test hook), at random moments, kills containers and CLIs,
// runs commands concurrently and scales under load, and after each fault
// checks that the next command converges, that no container is duplicated
// or leaked, and that a named volume keeps every byte written to it.
//
// CHAOS_CYCLES sets the number of fault cycles (30 by default; `make chaos`
// runs 200), CHAOS_SEED replays a run (the seed is printed).
package chaos

import (
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// The suite runs in a private network and mount namespace.
func TestMain(m *testing.M) { harness.Main(m) }
