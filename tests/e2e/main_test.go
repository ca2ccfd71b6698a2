package e2e

import (
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// The end-to-end tests run in a private network and mount namespace.
func TestMain(m *testing.M) { harness.Main(m) }
