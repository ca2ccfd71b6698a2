package supervisor

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestAliveWhenBusy: a supervisor that accepts no connection for the moment
// (busy, out of descriptors) is alive as long as its socket listens.
func TestAliveWhenBusy(t *testing.T) {
	dir, err := os.MkdirTemp("", "berth-alive-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	paths := Paths{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run")}
	if err := os.MkdirAll(paths.ProjectRunDir("p"), 0o700); err != nil {
		t.Fatal(err)
	}
	c := newClient(paths, "p")
	ctx := context.Background()
	if c.alive(ctx) {
		t.Error("alive without a socket")
	}
	ln, err := net.Listen("unix", paths.Socket("p"))
	if err != nil {
		t.Fatal(err)
	}
	// Nothing accepts: the kernel queues the connections.
	for i := range 3 {
		if !c.alive(ctx) {
			t.Errorf("probe %d: a listening supervisor that does not accept taken for dead", i)
		}
	}
	ln.Close()
	if c.alive(ctx) {
		t.Error("alive after the socket closed")
	}
}
