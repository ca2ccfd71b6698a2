package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/tests/harness"
)

// TestPublishedUDP: a published UDP port reaches the container.
func TestPublishedUDP(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("udpecho:latest", testimage.WithEntries(testimage.Entry{Name: "udpecho", Mode: 0o755, Body: harness.BuildStatic(t, "./testdata/udpecho")}))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: udp
services:
  sink:
    image: udpecho
    command: ["/udpecho"]
    ports: ["127.0.0.1:%d:9000/udp"]
`, port))
	e.MustRun("up", "-d")
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	waitFor(t, 10*time.Second, "an answer through the published UDP port", func() bool {
		_, _ = c.Write([]byte("datagram"))
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		return err == nil && string(buf[:n]) == "echo: datagram"
	})
	if !strings.Contains(e.MustRun("ps").Stdout, fmt.Sprintf("127.0.0.1:%d->9000/udp", port)) {
		t.Error("ps does not show the UDP port")
	}
	e.MustRun("down", "-t", "1")
}

// TestNetworkModes: none has only lo; service:NAME shares the namespace
// (and so localhost) of another service; host sees the host's interfaces.
func TestNetworkModes(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: modes
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo shared > /www/index.html && exec httpd -f -p 8000 -h /www"]
    init: true
  sidecar:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    network_mode: service:web
    depends_on: [web]
  isolated:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    network_mode: none
  hostnet:
    image: busybox
    command: ["sleep", "3600"]
    init: true
    network_mode: host
`)
	e.MustRun("up", "-d")
	time.Sleep(300 * time.Millisecond)
	if out := e.Run("exec", "-T", "sidecar", "timeout", "5", "wget", "-qO-", "http://127.0.0.1:8000/").Stdout; strings.TrimSpace(out) != "shared" {
		t.Errorf("service:web does not share web's localhost: %q", out)
	}
	links := e.MustRun("exec", "-T", "isolated", "ls", "/sys/class/net").Stdout
	if strings.Fields(links)[0] != "lo" || len(strings.Fields(links)) != 1 {
		t.Errorf("network_mode none has %q", links)
	}
	// The sandbox's namespace is this test's "host": it has lo and the
	// project's bridge.
	hostLinks := e.MustRun("exec", "-T", "hostnet", "ls", "/sys/class/net").Stdout
	if !strings.Contains(hostLinks, "brb-") {
		t.Errorf("network_mode host does not see the host's interfaces: %q", hostLinks)
	}
	e.MustRun("down", "-t", "1")
}
