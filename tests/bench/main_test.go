package bench

import (
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// Benchmarks that bring stacks up run in a private network and mount namespace.
func TestMain(m *testing.M) { harness.Main(m) }
