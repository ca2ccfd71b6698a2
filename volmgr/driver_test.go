package volmgr

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

func TestBindBackedVolume(t *testing.T) {
	m := newManager(t)
	device := filepath.Join(t.TempDir(), "srv-data")
	opts := map[string]string{"type": "none", "o": "bind", "device": device}
	v, err := m.Create(VolumeSpec{Name: "hostdata", DriverOpts: opts})
	if err != nil {
		t.Fatal(err) // created even though the device is missing, as Docker does
	}
	if v.DriverOpts["device"] != device {
		t.Errorf("driver opts %v", v.DriverOpts)
	}
	// Mounting needs the device.
	if _, err := m.Use("hostdata", "c1"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Use with missing device = %v", err)
	}
	if v, _ := m.Inspect("hostdata"); v.InUse() {
		t.Error("failed Use recorded a user")
	}
	must(t, os.Mkdir(device, 0o755))
	src, err := m.Use("hostdata", "c1")
	if err != nil || src != device {
		t.Fatalf("Use = %q, %v", src, err)
	}
	// Copy-up fills the device when it is empty.
	rootfs := imageRootfs(t)
	must(t, m.CopyUp("hostdata", rootfs, "/data"))
	if _, err := os.Stat(filepath.Join(device, "seed.txt")); err != nil {
		t.Errorf("copy-up into device: %v", err)
	}
	must(t, m.Release("hostdata", "c1"))
	must(t, m.Remove("hostdata", false))
	// Removing the volume forgets it; the host directory and its data stay.
	if _, err := os.Stat(filepath.Join(device, "seed.txt")); err != nil {
		t.Errorf("device content removed: %v", err)
	}
}

func TestTmpfsVolume(t *testing.T) {
	m := newManager(t)
	opts := map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=1000,gid=1000,mode=0770"}
	v, err := m.Create(VolumeSpec{Name: "scratch", DriverOpts: opts})
	if err != nil {
		t.Fatal(err)
	}
	data := v.Mountpoint
	t.Cleanup(func() { unmountAll(data) })

	if mounted(t, data) {
		t.Fatal("tmpfs mounted before any user")
	}
	src, err := m.Use("scratch", "c1")
	if err != nil || src != data {
		t.Fatalf("Use = %q, %v", src, err)
	}
	var sfs unix.Statfs_t
	must(t, unix.Statfs(data, &sfs))
	if sfs.Type != unix.TMPFS_MAGIC {
		t.Fatalf("not a tmpfs: %x", sfs.Type)
	}
	if got := sfs.Blocks * uint64(sfs.Bsize); got != 1<<20 {
		t.Errorf("size %d, want 1 MiB", got)
	}
	if st := lstat(t, data); st.Uid != 1000 || st.Gid != 1000 || st.Mode&0o7777 != 0o770 {
		t.Errorf("root uid %d gid %d mode %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	must(t, os.WriteFile(filepath.Join(data, "f"), []byte("x"), 0o644))

	// A second user shares the same tmpfs; the first leaving keeps it.
	if _, err := m.Use("scratch", "c2"); err != nil {
		t.Fatal(err)
	}
	must(t, m.Release("scratch", "c1"))
	if _, err := os.Stat(filepath.Join(data, "f")); err != nil {
		t.Fatal("tmpfs lost while c2 uses it")
	}
	// The last user leaving unmounts it; the content is gone.
	must(t, m.Release("scratch", "c2"))
	if mounted(t, data) {
		t.Fatal("tmpfs still mounted after the last user")
	}
	if _, err := os.Stat(filepath.Join(data, "f")); err == nil {
		t.Error("tmpfs content survived")
	}

	// A tmpfs left mounted by a berth that died is unmounted, not walked
	// into, when the volume is removed.
	c, _ := parseDriverOpts(opts)
	must(t, mountTmpfs(c, data))
	must(t, m.Remove("scratch", false))
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("volume directory left: %v", err)
	}
}

func TestTmpfsVolumeOptions(t *testing.T) {
	for _, tc := range []struct {
		o     string
		flags uintptr
		data  string
		err   bool
	}{
		{"size=64m,uid=1000", 0, "size=64m,uid=1000", false},
		{"ro,noexec,size=1m", unix.MS_RDONLY | unix.MS_NOEXEC, "size=1m", false},
		{"", 0, "", false},
		{"size=1m,user_xattr", 0, "", true},
	} {
		c, err := parseDriverOpts(map[string]string{"type": "tmpfs", "o": tc.o})
		if (err != nil) != tc.err {
			t.Errorf("o=%q: err %v", tc.o, err)
			continue
		}
		if err == nil && (c.flags != tc.flags || c.data != tc.data || c.kind != kindTmpfs || c.device != "tmpfs") {
			t.Errorf("o=%q: %+v", tc.o, c)
		}
	}
}

func mounted(t *testing.T, p string) bool {
	t.Helper()
	ok, err := mountinfo.Mounted(p)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
