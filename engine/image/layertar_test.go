package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLayerTarReadAhead: the tar WriteLayerTar makes while reading ahead
// is, byte for byte, the tar made one entry after the other: files small
// and big (past what a batch reads ahead), more than one batch, hard
// links, symlinks, empty files, special modes, a whiteout, an opaque
// directory (with root), xattrs.
func TestLayerTarReadAhead(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte(name+"\n"), size/(len(name)+1)+1)[:size]
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 {
		write(fmt.Sprintf("many/d%d/f%03d", i%7, i), 1000+i*37, 0o644)
	}
	for i := range 12 {
		write(fmt.Sprintf("mid/%02d", i), 200<<10, 0o600) // fill the batches' arenas
	}
	write("big/one", 3<<20, 0o755)
	write("empty", 0, 0o644)
	write("modes/suid", 10, 0o4755|os.ModeSetuid)
	write("modes/sticky", 10, 0o755|os.ModeSticky)
	if err := os.Link(filepath.Join(dir, "many/d0/f000"), filepath.Join(dir, "z-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "big/one"), filepath.Join(dir, "z-biglink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("many/d1", filepath.Join(dir, "sym")); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := unix.Mknod(filepath.Join(dir, "gone"), unix.S_IFCHR|0o600, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, "opaque"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lsetxattr(filepath.Join(dir, "opaque"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			t.Fatal(err)
		}
	}
	_ = unix.Lsetxattr(filepath.Join(dir, "many/d2/f002"), "user.note", []byte("kept"), 0)
	t0 := time.Unix(1700000000, 123456789)
	_ = os.Chtimes(filepath.Join(dir, "empty"), t0, t0)

	var got bytes.Buffer
	lt, empty, err := WriteLayerTar(dir, &got)
	if err != nil || empty {
		t.Fatal(err, empty)
	}
	want := serialLayerTar(t, dir)
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("tar differs from the serial one: %d bytes, want %d", got.Len(), len(want))
	}
	if lt.DiffID != fmt.Sprintf("sha256:%x", sha256.Sum256(want)) || lt.Size != int64(len(want)) {
		t.Fatalf("LayerTar %+v does not describe the tar", lt)
	}
	if n, _, err := WriteLayerTar(dir, nil); err != nil || n.DiffID != lt.DiffID || n.Size != lt.Size || n.Content != lt.Content {
		t.Fatalf("measured alone: %+v %v, want %+v", n, err, lt)
	}
}

// serialLayerTar is the layer tar of dir made the plain way: every entry
// lstatted, then written with its content, one after the other.
func serialLayerTar(t *testing.T, dir string) []byte {
	type entry struct {
		rel string
		fi  fs.FileInfo
	}
	var entries []entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := os.Lstat(p)
		rel, _ := filepath.Rel(dir, p)
		entries = append(entries, entry{filepath.ToSlash(rel), fi})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	links := map[uint64]string{}
	for _, e := range entries {
		p := filepath.Join(dir, e.rel)
		st := e.fi.Sys().(*syscall.Stat_t)
		d, base := path.Split(e.rel)
		if e.fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0 {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: d + whiteoutPrefix + base, Mode: 0o600, Format: tar.FormatPAX, ModTime: e.fi.ModTime()}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		link, _ := os.Readlink(p)
		hdr, err := tar.FileInfoHeader(e.fi, link)
		if err != nil {
			t.Fatal(err)
		}
		hdr.Name = e.rel
		if e.fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		names, _ := xattrNames(p, -1)
		for _, n := range names {
			if strings.HasPrefix(n, "trusted.") {
				continue
			}
			v, _ := getxattr(p, -1, n)
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+n] = v
		}
		if e.fi.Mode().IsRegular() && st.Nlink > 1 {
			if first, ok := links[st.Ino]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				if err := tw.WriteHeader(hdr); err != nil {
					t.Fatal(err)
				}
				continue
			}
			links[st.Ino] = e.rel
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.fi.IsDir() && IsOpaque(p) {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.rel + "/" + opaqueWhiteout, Mode: 0o600, Format: tar.FormatPAX, ModTime: e.fi.ModTime()}); err != nil {
				t.Fatal(err)
			}
		}
		if e.fi.Mode().IsRegular() && hdr.Size > 0 {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAddBuiltLayerStrips: the overlay xattrs the tar found (origin,
// impure) go when the directory is stored, the opaque marker stays, and
// the stored layer is the tar's.
func TestAddBuiltLayerStrips(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("trusted xattrs need root")
	}
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := upperDir(t, s)
	for _, d := range []string{"a", "b", "c"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	for name, data := range map[string][]byte{"a/f": []byte("one"), "c/big": big, "plain": []byte("two")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set := func(rel, name, value string) {
		t.Helper()
		if err := unix.Lsetxattr(filepath.Join(dir, rel), name, []byte(value), 0); err != nil {
			t.Fatal(err)
		}
	}
	set("a", "trusted.overlay.impure", "y")
	set("a/f", "trusted.overlay.origin", "x")
	set("b", "trusted.overlay.opaque", "y")
	set("c/big", "trusted.overlay.origin", "x")
	lt, _, err := WriteLayerTar(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "a/f", "c/big"}; strings.Join(lt.Overlay, " ") != strings.Join(want, " ") {
		t.Fatalf("overlay xattrs found on %q, want %q", lt.Overlay, want)
	}
	l, err := s.AddBuiltLayer(context.Background(), dir, lt)
	if err != nil || l.DiffID != lt.DiffID || l.Digest != lt.DiffID || l.Size != lt.Size {
		t.Fatalf("stored %v %v", l, err)
	}
	stored := s.LayerDir(l.DiffID)
	for _, rel := range []string{"a", "a/f", "c/big"} {
		if names, _ := xattrNames(filepath.Join(stored, rel), -1); len(names) != 0 {
			t.Errorf("%s kept %q", rel, names)
		}
	}
	if !IsOpaque(filepath.Join(stored, "b")) {
		t.Error("the opaque marker went")
	}
	if again, _, err := WriteLayerTar(stored, nil); err != nil || again.DiffID != lt.DiffID || len(again.Overlay) != 0 {
		t.Errorf("stored directory reads as %+v %v", again, err)
	}
}
