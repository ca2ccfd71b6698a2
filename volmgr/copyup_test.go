package volmgr

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var mtime = time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)

// capNetRaw is a file capability "cap_net_raw+ep" (vfs_cap_data revision 2).
var capNetRaw = []byte{
	0x01, 0x00, 0x00, 0x02, // magic: revision 2, effective
	0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // permitted (bit 13), inheritable
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // high words
}

// imageRootfs builds a rootfs with /data as an image would have it.
func imageRootfs(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	data := filepath.Join(root, "data")
	must(t, os.MkdirAll(filepath.Join(data, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(data, "seed.txt"), []byte("seed\n"), 0o640))
	must(t, os.Chown(filepath.Join(data, "seed.txt"), 1000, 1000))
	must(t, os.Chmod(filepath.Join(data, "seed.txt"), 0o640))
	must(t, unix.Setxattr(filepath.Join(data, "seed.txt"), "user.origin", []byte("image"), 0))
	must(t, os.Link(filepath.Join(data, "seed.txt"), filepath.Join(data, "sub", "seed-link")))
	must(t, os.Symlink("seed.txt", filepath.Join(data, "rel-link")))
	must(t, os.Symlink("/etc/shadow", filepath.Join(data, "abs-link")))
	must(t, unix.Lchown(filepath.Join(data, "abs-link"), 1000, 1000))
	must(t, os.WriteFile(filepath.Join(data, "suid"), []byte("#!/bin/sh\n"), 0o755))
	must(t, os.Chown(filepath.Join(data, "suid"), 1000, 1000)) // chown clears setuid: order matters
	must(t, os.Chmod(filepath.Join(data, "suid"), 0o4755|os.ModeSetuid))
	must(t, os.WriteFile(filepath.Join(data, "ping"), []byte("\x7fELF"), 0o755))
	must(t, unix.Setxattr(filepath.Join(data, "ping"), "security.capability", capNetRaw, 0))
	must(t, os.Chmod(filepath.Join(data, "sub"), 0o1777|os.ModeSticky))
	must(t, unix.Mkfifo(filepath.Join(data, "fifo"), 0o620))
	must(t, os.Chmod(filepath.Join(data, "fifo"), 0o620)) // past the umask
	must(t, os.Chtimes(filepath.Join(data, "seed.txt"), mtime, mtime))
	must(t, os.Chtimes(filepath.Join(data, "sub"), mtime, mtime))
	must(t, os.Chown(data, 999, 998))
	must(t, os.Chmod(data, 0o750))
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func TestCopyUpEmptyVolume(t *testing.T) {
	rootfs := imageRootfs(t)
	vol := t.TempDir()
	must(t, CopyUp(rootfs, "/data", vol))

	st := lstat(t, filepath.Join(vol, "seed.txt"))
	if st.Uid != 1000 || st.Gid != 1000 || st.Mode&0o7777 != 0o640 {
		t.Errorf("seed.txt: uid %d gid %d mode %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	if b, _ := os.ReadFile(filepath.Join(vol, "seed.txt")); string(b) != "seed\n" {
		t.Errorf("seed.txt content %q", b)
	}
	if sec, nsec := st.Mtim.Unix(); time.Unix(sec, nsec).UTC() != mtime {
		t.Errorf("seed.txt mtime %v", time.Unix(sec, nsec))
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(filepath.Join(vol, "seed.txt"), "user.origin", buf); err != nil || string(buf[:n]) != "image" {
		t.Errorf("xattr: %q, %v", buf[:n], err)
	}
	if hl := lstat(t, filepath.Join(vol, "sub", "seed-link")); hl.Ino != st.Ino {
		t.Error("hard link became a copy")
	}
	if st := lstat(t, filepath.Join(vol, "suid")); st.Mode&0o7777 != 0o4755 || st.Uid != 1000 {
		t.Errorf("setuid file: uid %d mode %o", st.Uid, st.Mode&0o7777)
	}
	capBuf := make([]byte, 64)
	if n, err := unix.Getxattr(filepath.Join(vol, "ping"), "security.capability", capBuf); err != nil || string(capBuf[:n]) != string(capNetRaw) {
		t.Errorf("file capability: %x, %v", capBuf[:n], err)
	}
	sub := lstat(t, filepath.Join(vol, "sub"))
	if sub.Mode&0o7777 != 0o1777 {
		t.Errorf("sticky dir mode %o", sub.Mode&0o7777)
	}
	if sec, nsec := sub.Mtim.Unix(); time.Unix(sec, nsec).UTC() != mtime {
		t.Errorf("dir mtime %v", time.Unix(sec, nsec))
	}
	for link, target := range map[string]string{"rel-link": "seed.txt", "abs-link": "/etc/shadow"} {
		got, err := os.Readlink(filepath.Join(vol, link))
		if err != nil || got != target {
			t.Errorf("%s -> %q, %v", link, got, err)
		}
	}
	if st := lstat(t, filepath.Join(vol, "abs-link")); st.Uid != 1000 {
		t.Errorf("symlink owner %d", st.Uid)
	}
	if st := lstat(t, filepath.Join(vol, "fifo")); st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o7777 != 0o620 {
		t.Errorf("fifo mode %o", st.Mode)
	}
	// The volume's root takes the image directory's owner and mode.
	if st := lstat(t, vol); st.Uid != 999 || st.Gid != 998 || st.Mode&0o7777 != 0o750 {
		t.Errorf("volume root: uid %d gid %d mode %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
}

func TestCopyUpNonEmptyVolumeKept(t *testing.T) {
	rootfs := imageRootfs(t)
	vol := t.TempDir()
	must(t, os.WriteFile(filepath.Join(vol, "mine"), []byte("x"), 0o600))
	before := lstat(t, vol)
	must(t, CopyUp(rootfs, "/data", vol))
	entries, _ := os.ReadDir(vol)
	if len(entries) != 1 || entries[0].Name() != "mine" {
		t.Errorf("volume content changed: %v", entries)
	}
	if after := lstat(t, vol); after.Uid != before.Uid || after.Mode != before.Mode {
		t.Error("owner or mode of a non-empty volume changed")
	}
}

func TestCopyUpNothingToCopy(t *testing.T) {
	rootfs := imageRootfs(t)
	must(t, os.WriteFile(filepath.Join(rootfs, "file"), []byte("x"), 0o644))
	for _, dest := range []string{"/missing", "/missing/deeper", "/file", "/file/below"} {
		vol := t.TempDir()
		if err := CopyUp(rootfs, dest, vol); err != nil {
			t.Errorf("%s: %v", dest, err)
		}
		if entries, _ := os.ReadDir(vol); len(entries) != 0 {
			t.Errorf("%s: copied %v", dest, entries)
		}
	}
}

// A malicious image points the mount path at the host: every symlink must
// resolve inside the rootfs.
func TestCopyUpSymlinkEscape(t *testing.T) {
	for _, tc := range []struct {
		name, link, dest string
	}{
		{"absolute", "/etc", "/data"},
		{"dotdot", "../../../../../../../../etc", "/data"},
		{"dotdot in path", "", "/../../../../etc"},
		{"intermediate", "/etc", "/data/."},
		{"chain", "/hop", "/data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "rootfs")
			must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
			must(t, os.WriteFile(filepath.Join(root, "etc", "image-marker"), []byte("image"), 0o644))
			if tc.link != "" {
				must(t, os.Symlink(tc.link, filepath.Join(root, "data")))
			}
			if tc.link == "/hop" {
				must(t, os.Symlink("../../../etc", filepath.Join(root, "hop")))
			}
			vol := t.TempDir()
			must(t, CopyUp(root, tc.dest, vol))
			entries, _ := os.ReadDir(vol)
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			if !slices.Equal(got, []string{"image-marker"}) {
				t.Errorf("copied %v, want only the rootfs's /etc", got)
			}
		})
	}
}

func TestManagerCopyUpThroughPrepare(t *testing.T) {
	m := newManager(t)
	rootfs := imageRootfs(t)
	mounts, err := PlanMounts(PlanInput{
		VolumesRoot: m.Root(),
		Volumes: []svcVolume{
			{Type: "volume", Source: "db", Target: "/data"},
			{Type: "volume", Target: "/data/sub"},
		},
		VolumeName: func(k string) string { return "demo_" + k },
	})
	must(t, err)
	_, err = m.Prepare("c1", "demo", rootfs, mounts)
	if err == nil {
		t.Fatal("Prepare with a missing named volume succeeded")
	}
	if vs, _ := m.List(Filters{}); len(vs) != 0 {
		t.Fatalf("rollback left %v", names(vs))
	}

	_, err = m.Create(VolumeSpec{Name: "demo_db", Labels: projectLabels("demo", "db")})
	must(t, err)
	got, err := m.Prepare("c1", "demo", rootfs, mounts)
	must(t, err)
	if got[0].Source != m.DataPath("demo_db") || got[1].Volume == "" || got[1].Source != m.DataPath(got[1].Volume) {
		t.Fatalf("prepared %+v", got)
	}
	if _, err := os.Stat(filepath.Join(m.DataPath("demo_db"), "seed.txt")); err != nil {
		t.Errorf("named volume not filled: %v", err)
	}
	if _, err := os.Stat(filepath.Join(got[1].Source, "seed-link")); err != nil {
		t.Errorf("anonymous volume not filled: %v", err)
	}
	// A second container finds the volume filled and uses it as it is.
	must(t, os.Remove(filepath.Join(m.DataPath("demo_db"), "seed.txt")))
	_, err = m.Prepare("c2", "demo", rootfs, mounts[:1])
	must(t, err)
	if _, err := os.Stat(filepath.Join(m.DataPath("demo_db"), "seed.txt")); err == nil {
		t.Error("non-empty volume refilled")
	}
	v, _ := m.Inspect("demo_db")
	if !slices.Equal(v.Users, []string{"c1", "c2"}) {
		t.Errorf("users %v", v.Users)
	}
	removed, err := m.ReleaseAll("c1", true)
	if err != nil || !slices.Equal(removed, []string{got[1].Volume}) {
		t.Errorf("ReleaseAll = %v, %v", removed, err)
	}
}

// The real case: the rootfs is an overlay of image layers.
func TestCopyUpFromOverlay(t *testing.T) {
	dir := t.TempDir()
	lower := imageRootfs(t)
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		must(t, os.Mkdir(d, 0o755))
	}
	// The top layer deletes one file and adds another.
	must(t, os.MkdirAll(filepath.Join(upper, "data"), 0o750))
	must(t, os.Chown(filepath.Join(upper, "data"), 999, 998))
	must(t, unix.Mknod(filepath.Join(upper, "data", "fifo"), unix.S_IFCHR, 0)) // whiteout
	must(t, os.WriteFile(filepath.Join(upper, "data", "added"), []byte("top"), 0o644))
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("overlay: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })

	vol := t.TempDir()
	must(t, CopyUp(merged, "/data", vol))
	for _, name := range []string{"seed.txt", "added", "suid", "ping", "sub/seed-link"} {
		if _, err := os.Lstat(filepath.Join(vol, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(vol, "fifo")); err == nil {
		t.Error("whited-out file copied")
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(filepath.Join(vol, "ping"), "security.capability", buf); err != nil || n != len(capNetRaw) {
		t.Errorf("file capability through overlay: %v", err)
	}
	if st := lstat(t, filepath.Join(vol, "seed.txt")); st.Uid != 1000 || st.Mode&0o7777 != 0o640 {
		t.Errorf("seed.txt uid %d mode %o", st.Uid, st.Mode&0o7777)
	}
}
