package image_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/internal/testimage"
)

// TestInitLayer mounts containers with mount targets: those the image lacks
// appear in the merged view where the runtime would have made them, with
// nothing in the container's upper directory; those it has are untouched.
// The layer is shared and goes with its image.
func TestInitLayer(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	etc := testimage.Dir("etc/", 0o750)
	etc.Uid, etc.Gid = 7, 8
	etc.Xattrs = map[string]string{"user.kept": "yes"}
	img, err := testimage.Image(v1.Config{Cmd: []string{"sh"}},
		[]testimage.Entry{
			etc,
			testimage.File("etc/hostname", 0o600, "image's\n"),
			testimage.File("etc/resolv.conf", 0o644, "nameserver 1.1.1.1\n"),
			testimage.Dir("usr/", 0o755),
			testimage.Dir("usr/sbin/", 0o711),
			testimage.Symlink("sbin", "usr/sbin"),
			testimage.File("proc", 0o644, "a file where /proc goes"),
			testimage.File("flat", 0o644, ""),
		},
		[]testimage.Entry{
			// Overlay shows the topmost directory's attributes.
			etc,
			testimage.Whiteout("etc/resolv.conf"),
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "img.tar")
	if err := testimage.WriteDockerArchive(archive, "init:test", img); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	if _, err := s.Load(ctx, archive, nil); err != nil {
		t.Fatal(err)
	}
	targets := []image.Target{
		{Path: "/proc", Dir: true}, {Path: "/dev", Dir: true},
		{Path: "/etc/hostname"}, {Path: "/etc/hosts"}, {Path: "/etc/resolv.conf"},
		{Path: "/sbin/berth-init"}, {Path: "/flat/x"}, {Path: "/new/dir/file"},
	}
	var roots []string
	for _, cid := range []string{"one", "two"} {
		t.Cleanup(func() { _ = s.RemoveRootfs(cid) })
		root, err := s.Mount(ctx, cid, "init:test", targets...)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, root)
	}
	root := roots[0]
	type want struct {
		mode fs.FileMode
		uid  uint32
		body string
	}
	for p, w := range map[string]want{
		"etc":                 {mode: fs.ModeDir | 0o750, uid: 7},
		"etc/hosts":           {mode: 0o644},
		"etc/hostname":        {mode: 0o600, body: "image's\n"},
		"etc/resolv.conf":     {mode: 0o644},
		"sbin":                {mode: fs.ModeSymlink | 0o777},
		"usr/sbin":            {mode: fs.ModeDir | 0o711},
		"usr/sbin/berth-init": {mode: 0o644},
		"proc":                {mode: 0o644, body: "a file where /proc goes"},
		"dev":                 {mode: fs.ModeDir | 0o755},
		"flat":                {mode: 0o644},
		"new/dir":             {mode: fs.ModeDir | 0o755},
		"new/dir/file":        {mode: 0o644},
	} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode() != w.mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), w.mode)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != w.uid {
			t.Errorf("%s: owner %d, want %d", p, uid, w.uid)
		}
		if fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(filepath.Join(root, p)); string(b) != w.body {
				t.Errorf("%s: %q, want %q", p, b, w.body)
			}
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "sys")); err == nil {
		t.Error("sys appeared without being a target")
	}
	buf := make([]byte, 16)
	if n, err := syscall.Getxattr(filepath.Join(root, "etc"), "user.kept", buf); err != nil || string(buf[:n]) != "yes" {
		t.Errorf("etc's xattr: %q, %v", buf[:max(n, 0)], err)
	}

	for _, r := range roots {
		ents, err := os.ReadDir(filepath.Join(filepath.Dir(r), "upper"))
		if err != nil || len(ents) != 0 {
			t.Errorf("upper dir of %s: %d entries, %v", r, len(ents), err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "init")); len(ents) != 1 {
		t.Errorf("%d init layers, want one shared", len(ents))
	}
	// The container's writes still land in its own upper directory.
	if err := os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("w"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(roots[1], "etc/hosts")); len(b) != 0 {
		t.Errorf("a write reached another container: %q", b)
	}

	for _, cid := range []string{"one", "two"} {
		if err := s.RemoveRootfs(cid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Remove("init:test", false); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "init")); len(ents) != 0 {
		t.Errorf("%d init layers left after the image went", len(ents))
	}
}
