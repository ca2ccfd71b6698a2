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

	"github.com/berthrun/berth/engine/image/unpack"
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
	if err := addXattrs(hdr, p); err != nil {
		return 0, err
	}
	if fi.Mode().IsRegular() && st != nil && st.Nlink > 1 {
		if first, ok := links[st.Ino]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			return 0, tw.WriteHeader(hdr)
		}
		links[st.Ino] = rel
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return 0, err
	}
	if fi.IsDir() {
		if v, err := getxattr(p, unpack.OpaqueXattr); err == nil && v == "y" {
			return 0, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel + "/" + opaqueWhiteout, Mode: 0o600, Format: tar.FormatPAX, ModTime: fi.ModTime()})
		}
	}
	if !fi.Mode().IsRegular() || hdr.Size == 0 {
		return 0, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// Not io.Copy: *os.File's WriteTo would take its own buffer each time.
	n, err := io.CopyBuffer(tw, struct{ io.Reader }{f}, buf)
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("changed while read: %d bytes, not %d", n, hdr.Size)
	}
	return n, err
}

// addXattrs records a file's extended attributes, except overlay's own
// (trusted.*), which describe the upper directory, not the content.
func addXattrs(hdr *tar.Header, p string) error {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz <= 0 {
		return nil // no xattrs, or a filesystem without them
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.") {
			continue
		}
		v, err := getxattr(p, name)
		if err != nil {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+name] = v
	}
	return nil
}

func getxattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
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
