package image

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// UncompressedLayer is the media type of a layer the store keeps as its
// directory alone: its blob is the tar WriteLayerTar makes of the
// directory, so its digest is its diff ID.
const UncompressedLayer = string(types.DockerUncompressedLayer)

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// LayerTar is what WriteLayerTar wrote.
type LayerTar struct {
	DiffID  string // sha256 of the tar
	Size    int64  // bytes of the tar
	Content int64  // bytes of file content in it
}

// WriteLayerTar writes the directory dir, in the store's unpacked format
// (an overlay upper directory: whiteouts as 0/0 character devices, opaque
// directories by xattr), as an OCI layer tar to w (nil: only measured):
// entries sorted by path, numeric owners only, no access or change times,
// whiteouts as OCI's, hard links within the layer kept as links. The same
// directory always gives the same bytes, so a stored layer's tar can be
// made again when it is pushed or saved instead of being kept; empty is
// true when dir holds nothing.
func WriteLayerTar(dir string, w io.Writer) (t LayerTar, empty bool, err error) {
	type entry struct {
		rel string
		fi  fs.FileInfo
	}
	var entries []entry
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		entries = append(entries, entry{filepath.ToSlash(rel), fi})
		return nil
	})
	if err != nil {
		return t, false, err
	}
	if len(entries) == 0 {
		return t, true, nil
	}
	// Sorted by path as a string: a directory comes before its children.
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })

	h := sha256.New()
	var out io.Writer = h
	var bw *bufio.Writer
	if w != nil {
		bw = bufio.NewWriterSize(w, 256<<10)
		out = io.MultiWriter(bw, h)
	}
	cw := &countWriter{w: out}
	tw := tar.NewWriter(cw)

	links := map[uint64]string{} // inode -> first name, for hard links
	buf := make([]byte, 128<<10)
	for _, e := range entries {
		n, err := addEntry(tw, dir, e.rel, e.fi, links, buf)
		if err != nil {
			return t, false, fmt.Errorf("layer: %s: %w", e.rel, err)
		}
		t.Content += n
	}
	if err := tw.Close(); err != nil {
		return t, false, err
	}
	if bw != nil {
		if err := bw.Flush(); err != nil {
			return t, false, err
		}
	}
	t.DiffID, t.Size = sumOf(h), cw.n
	return t, false, nil
}

// addEntry writes one entry, of the file rel below root that fi describes
// (lstat), and returns the bytes of content it carried; buf is for copying.
// A regular file's xattrs and content are read through one raw descriptor:
// an *os.File's poller registration and each path lookup again had cost
// more than reading a small file.
func addEntry(tw *tar.Writer, root, rel string, fi fs.FileInfo, links map[uint64]string, buf []byte) (int64, error) {
	p := filepath.Join(root, rel)
	st, _ := fi.Sys().(*syscall.Stat_t)
	dir, base := path.Split(rel)
	// An overlay whiteout: a character device 0/0.
	if fi.Mode()&fs.ModeCharDevice != 0 && st != nil && st.Rdev == 0 {
		return 0, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + whiteoutPrefix + base, Mode: 0o600, Format: tar.FormatPAX, ModTime: fi.ModTime()})
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return 0, err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return 0, err
	}
	hdr.Name = rel
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.Format = tar.FormatPAX
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	if st != nil {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
	}
	firstLink := ""
	if fi.Mode().IsRegular() && st != nil && st.Nlink > 1 {
		if first, ok := links[st.Ino]; ok {
			firstLink = first
		} else {
			links[st.Ino] = rel
		}
	}
	fd := -1
	if fi.Mode().IsRegular() && hdr.Size > 0 && firstLink == "" {
		if fd, err = unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0); err != nil {
			return 0, &os.PathError{Op: "open", Path: p, Err: err}
		}
		defer unix.Close(fd)
	}
	addXattrs(hdr, p, fd)
	if firstLink != "" {
		hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, firstLink, 0
		return 0, tw.WriteHeader(hdr)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return 0, err
	}
	if fi.IsDir() {
		if IsOpaque(p) {
			return 0, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel + "/" + opaqueWhiteout, Mode: 0o600, Format: tar.FormatPAX, ModTime: fi.ModTime()})
		}
	}
	if fd < 0 {
		return 0, nil
	}
	var n int64
	for {
		m, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &os.PathError{Op: "read", Path: p, Err: err}
		}
		if m == 0 {
			break
		}
		if _, err := tw.Write(buf[:m]); err != nil {
			return n, err
		}
		n += int64(m)
	}
	if n != hdr.Size {
		return n, fmt.Errorf("changed while read: %d bytes, not %d", n, hdr.Size)
	}
	return n, nil
}

// addXattrs records a file's extended attributes (through fd when it is
// not -1), except overlay's own (trusted.*), which describe the upper
// directory, not the content.
func addXattrs(hdr *tar.Header, p string, fd int) {
	names, err := xattrNames(p, fd)
	if err != nil {
		return // a filesystem without them
	}
	for _, name := range names {
		if strings.HasPrefix(name, "trusted.") {
			continue
		}
		v, err := getxattr(p, fd, name)
		if err != nil {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+name] = v
	}
}

// xattrNames lists the names of p's extended attributes (through fd when
// it is not -1).
func xattrNames(p string, fd int) ([]string, error) {
	list := func(buf []byte) (int, error) {
		if fd >= 0 {
			return unix.Flistxattr(fd, buf)
		}
		return unix.Llistxattr(p, buf)
	}
	sz, err := list(nil)
	if err != nil || sz <= 0 {
		return nil, err
	}
	buf := make([]byte, sz)
	if sz, err = list(buf); err != nil {
		return nil, err
	}
	var names []string
	for _, name := range strings.Split(string(buf[:sz]), "\x00") {
		if name != "" {
			names = append(names, name)
		}
	}
	return names, nil
}

// getxattr reads one extended attribute of p (through fd when it is not
// -1).
func getxattr(p string, fd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		var n int
		var err error
		if fd >= 0 {
			n, err = unix.Fgetxattr(fd, name, buf)
		} else {
			n, err = unix.Lgetxattr(p, name, buf)
		}
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// dirBlob reports whether the stored layer l's blob is the tar of its
// directory rather than a file of the store.
func dirBlob(l Layer) bool {
	return l.MediaType == UncompressedLayer && l.Digest != "" && l.Digest == l.DiffID
}

// openDirBlob streams the tar of the stored layer l's directory. The tar
// is checked against l's digest and size as it goes: a reader gets an
// error, not different bytes, if the directory no longer gives the tar it
// gave when stored.
func (s *Store) openDirBlob(l Layer) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		t, _, err := WriteLayerTar(s.LayerDir(l.DiffID), pw)
		if err == nil && (t.DiffID != l.Digest || t.Size != l.Size) {
			err = fmt.Errorf("layer %s: its directory now reads as %s (%d bytes, not %d)", short(l.DiffID), short(t.DiffID), t.Size, l.Size)
		}
		pw.CloseWithError(err)
	}()
	return pr
}
