package bench

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// stack is a compose file of n busybox services that wait for a signal.
func stack(name string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nservices:\n", name)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  s%02d:\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n    init: true\n", i)
	}
	return b.String()
}

// BenchmarkUpDown times `berth up -d` and `berth down` of stacks of 3 and
// 10 services with the built binary, as a user runs them. Reported as
// up-ms and down-ms per run; compare with PEERS.md's docker compose figures
// (3.16 s and 1.01 s for 10 services on this machine kind).
func BenchmarkUpDown(b *testing.B) {
	for _, n := range []int{3, 10} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			e := harness.New(b)
			e.LoadImage("busybox:latest")
			e.WriteFile("compose.yaml", stack("bench", n))
			var up, down time.Duration
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				e.MustRun("up", "-d")
				t1 := time.Now()
				e.MustRun("down", "-t", "1")
				up += t1.Sub(t0)
				down += time.Since(t1)
			}
			b.ReportMetric(float64(up.Milliseconds())/float64(b.N), "up-ms")
			b.ReportMetric(float64(down.Milliseconds())/float64(b.N), "down-ms")
		})
	}
}
