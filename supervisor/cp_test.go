package supervisor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berthrun/berth/engine/runtime"
)

func TestResolvePath(t *testing.T) {
	base := t.TempDir()
	rootfs, vol, hosts := filepath.Join(base, "rootfs"), filepath.Join(base, "vol"), filepath.Join(base, "hosts")
	for _, d := range []string{rootfs + "/etc", rootfs + "/tmp", rootfs + "/data", vol + "/sub"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644)
	links := map[string]string{
		"tmp/abs":      base,                        // absolute, to the host's view
		"tmp/up":       "../../../../../../" + base, // climbing
		"tmp/datalink": "/data/sub",                 // into the volume
		"tmp/hostsln":  "/etc/hosts",                // to a file mount
		"tmp/loop":     "loop",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(rootfs, name)); err != nil {
			t.Fatal(err)
		}
	}
	c := &container{rec: &Record{Spec: runtime.Spec{Rootfs: rootfs, Mounts: []runtime.Mount{
		{Source: vol, Destination: "/data"},
		{Source: hosts, Destination: "/etc/hosts"},
	}}}}
	tests := []struct {
		in         string
		followLast bool
		want       string
		wantErr    bool
	}{
		{"/etc/passwd", false, rootfs + "/etc/passwd", false},
		{"tmp/../../../etc", false, rootfs + "/etc", false},
		{"/data", false, vol, false},
		{"/data/sub/x", false, vol + "/sub/x", false},
		{"/etc/hosts", false, hosts, false},
		{"/tmp/abs", false, rootfs + "/tmp/abs", false},
		{"/tmp/abs", true, rootfs + base, false},
		{"/tmp/abs/x", false, rootfs + base + "/x", false},
		{"/tmp/up/x", false, rootfs + base + "/x", false},
		{"/tmp/datalink/x", false, vol + "/sub/x", false},
		{"/tmp/hostsln", true, hosts, false},
		{"/tmp/loop", true, "", true},
	}
	for _, tt := range tests {
		got, err := c.resolvePath(tt.in, tt.followLast)
		if (err != nil) != tt.wantErr || got != filepath.Clean(tt.want) && !tt.wantErr {
			t.Errorf("resolvePath(%q, %t) = %q, %v; want %q", tt.in, tt.followLast, got, err, tt.want)
		}
	}
}
