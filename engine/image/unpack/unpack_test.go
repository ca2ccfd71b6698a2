package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/internal/testimage"
)

func apply(t *testing.T, dir string, entries ...testimage.Entry) error {
	t.Helper()
	b, err := testimage.Tar(entries...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Apply(context.Background(), dir, bytes.NewReader(b))
	return err
}

// listTree returns every path under dir.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestApplyRefusesEscapes(t *testing.T) {
	tests := []struct {
		name    string
		entries func(outside string) []testimage.Entry
	}{
		{"dotdot file", func(string) []testimage.Entry {
			return []testimage.Entry{testimage.File("../x", 0o644, "pwned")}
		}},
		{"dotdot nested", func(string) []testimage.Entry {
			return []testimage.Entry{testimage.File("a/../../x", 0o644, "pwned")}
		}},
		{"absolute", func(string) []testimage.Entry {
			return []testimage.Entry{testimage.File("/etc/x", 0o644, "pwned")}
		}},
		{"write through absolute symlink", func(outside string) []testimage.Entry {
			return []testimage.Entry{
				testimage.Symlink("evil", outside),
				testimage.File("evil/x", 0o644, "pwned"),
			}
		}},
		{"write through relative symlink", func(string) []testimage.Entry {
			return []testimage.Entry{
				testimage.Symlink("evil", "../.."),
				testimage.File("evil/x", 0o644, "pwned"),
			}
		}},
		{"mkdir through symlink", func(outside string) []testimage.Entry {
			return []testimage.Entry{
				testimage.Symlink("evil", outside),
				testimage.Dir("evil/newdir/", 0o755),
			}
		}},
		{"whiteout through symlink", func(outside string) []testimage.Entry {
			return []testimage.Entry{
				testimage.Symlink("evil", outside),
				testimage.Whiteout("evil/secret"),
			}
		}},
		{"opaque through symlink", func(outside string) []testimage.Entry {
			return []testimage.Entry{
				testimage.Symlink("evil", outside),
				testimage.Opaque("evil"),
			}
		}},
		{"hard link to dotdot", func(string) []testimage.Entry {
			return []testimage.Entry{testimage.Hardlink("hl", "../secret")}
		}},
		{"hard link to absolute", func(outside string) []testimage.Entry {
			return []testimage.Entry{testimage.Hardlink("hl", filepath.Join(outside, "secret"))}
		}},
		{"hard link through symlink", func(outside string) []testimage.Entry {
			return []testimage.Entry{
				testimage.Symlink("evil", outside),
				testimage.Hardlink("hl", "evil/secret"),
			}
		}},
		{"bad whiteout name", func(string) []testimage.Entry {
			return []testimage.Entry{testimage.File("a/.wh...", 0o644, "")}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outside := t.TempDir()
			secret := filepath.Join(outside, "secret")
			if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			layer := filepath.Join(outside, "deep", "layer")
			if err := os.MkdirAll(layer, 0o755); err != nil {
				t.Fatal(err)
			}
			err := apply(t, layer, tc.entries(outside)...)
			if err == nil {
				t.Fatal("Apply accepted a layer that escapes its root")
			}
			if !errors.Is(err, ErrUnsafePath) {
				t.Logf("error (not ErrUnsafePath): %v", err)
			}
			// Nothing outside the layer changed.
			var outsideNow []string
			for _, p := range listTree(t, outside) {
				if p == "deep/layer" || strings.HasPrefix(p, "deep/layer/") {
					continue
				}
				outsideNow = append(outsideNow, p)
			}
			want := []string{".", "deep", "secret"}
			if len(outsideNow) != len(want) {
				t.Fatalf("outside the layer: %v, want %v", outsideNow, want)
			}
			for i := range want {
				if outsideNow[i] != want[i] {
					t.Fatalf("outside the layer: %v, want %v", outsideNow, want)
				}
			}
			var st unix.Stat_t
			if err := unix.Stat(secret, &st); err != nil {
				t.Fatal(err)
			}
			if st.Nlink != 1 {
				t.Fatalf("secret has %d links", st.Nlink)
			}
			if b, _ := os.ReadFile(secret); string(b) != "secret" {
				t.Fatalf("secret changed: %q", b)
			}
			if _, err := os.Stat("/etc/x"); err == nil {
				t.Fatal("/etc/x exists")
			}
		})
	}
}

func TestApplyPreservesMetadata(t *testing.T) {
	dir := t.TempDir()
	err := apply(t, dir,
		testimage.Dir("usr/", 0o755),
		testimage.Dir("usr/lib/", 0o755),
		testimage.Symlink("lib", "usr/lib"),
		testimage.File("lib/libx.so", 0o644, "lib"), // through an in-layer symlink
		testimage.Entry{Name: "bin/su", Type: tar.TypeReg, Mode: 0o4755, Body: []byte("su")},
		testimage.Entry{Name: "bin/wall", Type: tar.TypeReg, Mode: 0o2755, Gid: 5, Body: []byte("w")},
		testimage.Dir("tmp/", 0o1777),
		testimage.Entry{Name: "home/app/f", Type: tar.TypeReg, Mode: 0o600, Uid: 1000, Gid: 1000, Body: []byte("f")},
		testimage.Hardlink("bin/su-link", "bin/su"),
		testimage.Symlink("etc/abs", "/etc/passwd"),
		testimage.Entry{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		testimage.Entry{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o600},
		testimage.Entry{Name: "cap", Type: tar.TypeReg, Mode: 0o755, Body: []byte("c"),
			Xattrs: map[string]string{"user.berth": "yes", "trusted.overlay.opaque": "y"}},
		testimage.File("file", 0o644, "one"),
		testimage.File("file", 0o600, "two"), // a later entry replaces an earlier one
	)
	if err != nil {
		t.Fatal(err)
	}
	check := func(p string, mode os.FileMode) os.FileInfo {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if mode != 0 && fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
		}
		return fi
	}
	check("bin/su", 0o755|os.ModeSetuid)
	check("bin/wall", 0o755|os.ModeSetgid)
	check("tmp", 0o777|os.ModeDir|os.ModeSticky)
	check("dev/null", 0o666|os.ModeDevice|os.ModeCharDevice)
	check("run/fifo", 0o600|os.ModeNamedPipe)
	if b, _ := os.ReadFile(filepath.Join(dir, "usr/lib/libx.so")); string(b) != "lib" {
		t.Errorf("usr/lib/libx.so = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "file")); string(b) != "two" {
		t.Errorf("file = %q", b)
	}
	st := check("home/app/f", 0o600).Sys().(*syscall.Stat_t)
	if st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("home/app/f owned by %d:%d", st.Uid, st.Gid)
	}
	if st := check("bin/su-link", 0).Sys().(*syscall.Stat_t); st.Nlink != 2 {
		t.Errorf("bin/su-link has %d links, want 2", st.Nlink)
	}
	if target, err := os.Readlink(filepath.Join(dir, "etc/abs")); err != nil || target != "/etc/passwd" {
		t.Errorf("etc/abs -> %q, %v", target, err)
	}
	if fi := check("file", 0); !fi.ModTime().Equal(testimage.Epoch) {
		t.Errorf("file mtime %v, want %v", fi.ModTime(), testimage.Epoch)
	}
	if fi := check("usr", 0); !fi.ModTime().Equal(testimage.Epoch) {
		t.Errorf("usr mtime %v, want %v", fi.ModTime(), testimage.Epoch)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "cap"), "user.berth", buf); err != nil || string(buf[:n]) != "yes" {
		t.Errorf("user.berth xattr = %q, %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(dir, "cap"), "trusted.overlay.opaque", buf); err == nil {
		t.Error("a layer set trusted.overlay.opaque through PAX xattrs")
	}
}

func TestApplyWhiteouts(t *testing.T) {
	dir := t.TempDir()
	err := apply(t, dir,
		testimage.Dir("etc/", 0o755),
		testimage.Whiteout("etc/gone"),
		testimage.Dir("data/", 0o755),
		testimage.Opaque("data"),
		testimage.File("data/new", 0o644, "new"),
	)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "etc/gone"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/gone: mode %o rdev %d, want a 0/0 character device", st.Mode, st.Rdev)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc/.wh.gone")); err == nil {
		t.Error("the .wh. file itself was written")
	}
	buf := make([]byte, 4)
	n, err := unix.Lgetxattr(filepath.Join(dir, "data"), OpaqueXattr, buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("data opaque xattr = %q, %v", buf[:n], err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "data/.wh..wh..opq")); err == nil {
		t.Error("the opaque marker file itself was written")
	}
}

// BenchmarkApplySmallFiles unpacks 10,000 files of 1 KiB in 100 directories.
func BenchmarkApplySmallFiles(b *testing.B) {
	var entries []testimage.Entry
	body := strings.Repeat("x", 1024)
	for d := range 100 {
		entries = append(entries, testimage.Dir(fmt.Sprintf("d%03d/", d), 0o755))
		for f := range 100 {
			entries = append(entries, testimage.File(fmt.Sprintf("d%03d/f%03d", d, f), 0o644, body))
		}
	}
	tb, err := testimage.Tar(entries...)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(tb)))
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(b.TempDir(), fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := Apply(context.Background(), dir, bytes.NewReader(tb)); err != nil {
			b.Fatal(err)
		}
	}
}
