package bench

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/tests/harness"
)

// sinkPort is where testdata/sink listens inside its container.
const sinkPort = "9000"

// BenchmarkProxyContainer compares a published port (127.0.0.1:<port>)
// with a direct connection to the container's bridge address, both
// reaching testdata/sink in a real container, once for each way berth
// serves the port: nftables DNAT in the kernel and the supervisor's
// userspace proxy. The test process runs in the sandbox's network
// namespace, in which the bridge is reachable.
func BenchmarkProxyContainer(b *testing.B) {
	srv := harness.BuildStatic(b, "./testdata/sink")
	// kernel-nft is the kernel path without the BPF fast path that takes
	// the host's own connections off NAT.
	for _, mode := range []struct {
		name  string
		env   []string
		label string
	}{
		{"kernel", []string{"BERTH_PROXY=kernel"}, "kernel, BPF fast path"},
		{"kernel-nft", []string{"BERTH_PROXY=kernel", "BERTH_PORTS_BPF=0"}, "kernel DNAT only"},
		{"userspace", []string{"BERTH_PROXY=userspace"}, "userspace proxy"},
	} {
		b.Run(mode.name, func(b *testing.B) {
			e := harness.New(b)
			e.Environ = append(e.Environ, mode.env...)
			e.LoadImage("benchsink:latest", testimage.WithEntries(testimage.Entry{Name: "srv", Mode: 0o755, Body: srv}))
			port := freePort(b)
			e.WriteFile("compose.yaml", fmt.Sprintf(`name: benchproxy-%s
services:
  sink:
    image: benchsink
    command: ["/srv", "-l", ":%s"]
    init: true
    stop_grace_period: 1s
    ports: ["127.0.0.1:%d:%s"]
`, mode.name, sinkPort, port, sinkPort))
			e.MustRun("up", "-d")
			b.Cleanup(func() { e.MustRun("down", "-t", "1") })
			ip := e.ContainerIP("sink", 1)
			paths := bench{
				direct:  net.JoinHostPort(ip, sinkPort),
				proxied: fmt.Sprintf("127.0.0.1:%d", port),
			}
			for k := range 2 {
				if err := awaitEcho(paths.addr(k), 15*time.Second); err != nil {
					b.Fatalf("sink not answering on the %s path %s: %v", name(k), paths.addr(k), err)
				}
			}
			comparePaths(b, paths, "published port ("+mode.label+") → container", 500)
		})
	}
}

// awaitEcho retries one echo round trip to addr until it works or timeout
// passes.
func awaitEcho(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := rttOneConn(addr, 1)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
