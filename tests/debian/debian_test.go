package debian

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	if Key("b", "a", "a") != Key("a", "b") {
		t.Error("the key depends on the order or repetition of packages")
	}
	if Key() == Key("a") {
		t.Error("the key does not depend on the packages")
	}
}

// TestMinbase makes (or finds cached) the minbase tarball every Debian
// image of the tests starts from, and reads it: Debian 12's userland, no
// device nodes, no package lists.
func TestMinbase(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("debootstrap needs root")
	}
	p := Tarball(t)
	if again := Tarball(t); again != p {
		t.Fatalf("second call gave %s, first %s", again, p)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	seen := map[string]bool{}
	var version string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		seen[name] = true
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			t.Errorf("device node %s in the tarball", name)
		}
		if strings.HasPrefix(name, "var/lib/apt/lists/") && strings.HasSuffix(name, "_Packages") {
			t.Errorf("package list %s in the tarball", name)
		}
		if name == "etc/debian_version" {
			b, _ := io.ReadAll(tr)
			version = strings.TrimSpace(string(b))
		}
	}
	if !strings.HasPrefix(version, "12.") {
		t.Errorf("etc/debian_version is %q, want 12.x", version)
	}
	for _, want := range []string{"usr/bin/bash", "usr/bin/apt-get", "usr/bin/dpkg", "etc/apt/sources.list"} {
		if !seen[want] {
			t.Errorf("%s missing from the tarball", want)
		}
	}
}
