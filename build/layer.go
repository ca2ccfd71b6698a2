package build

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/engine/image"
)

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
	layerMediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// writeLayer turns an overlay upper directory into an OCI layer: a tar with
// entries sorted by path, numeric owners only, overlay whiteouts (0/0
// character devices, opaque directories) as OCI whiteouts, hard links
// within the layer kept as links. It writes the gzip blob to w and returns
// the layer's identity and its bytes of file content; empty is true when
// the directory holds nothing.
func writeLayer(upper string, w io.Writer) (l image.Layer, content int64, empty bool, err error) {
	var paths []string
	err = filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != upper {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return l, 0, false, err
	}
	if len(paths) == 0 {
		return l, 0, true, nil
	}
	// Sort by path components, so that a directory comes before its
	// children and "a/b" before "a-b" does not matter.
	rel := make([]string, len(paths))
	for i, p := range paths {
		rel[i], _ = filepath.Rel(upper, p)
	}
	sort.Strings(rel)

	blobHash := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, blobHash)}
	zw, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	if err != nil {
		return l, 0, false, err
	}
	diffHash := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diffHash))
	links := map[uint64]string{} // inode -> first name, for hard links
	for _, r := range rel {
		n, err := addEntry(tw, upper, filepath.ToSlash(r), links)
		if err != nil {
			return l, 0, false, fmt.Errorf("layer: %s: %w", r, err)
		}
		content += n
	}
	if err := tw.Close(); err != nil {
		return l, 0, false, err
	}
	if err := zw.Close(); err != nil {
		return l, 0, false, err
	}
	return image.Layer{DiffID: sumOf(diffHash), Digest: sumOf(blobHash), MediaType: layerMediaType, Size: cw.n}, content, false, nil
}

// addEntry writes one entry and returns the bytes of content it carried.
func addEntry(tw *tar.Writer, root, rel string, links map[uint64]string) (int64, error) {
	p := filepath.Join(root, rel)
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	dir, base := filepath.Split(rel)
	// An overlay whiteout: a character device 0/0.
	if fi.Mode()&fs.ModeCharDevice != 0 && st != nil && st.Rdev == 0 {
		return 0, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + whiteoutPrefix + base, Mode: 0o600, Format: tar.FormatPAX, ModTime: fi.ModTime()})
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
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
		if v, err := getxattr(p, opaqueXattr); err == nil && v == "y" {
			return 0, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel + "/" + opaqueWhiteout, Mode: 0o600, Format: tar.FormatPAX, ModTime: fi.ModTime()})
		}
	}
	if !fi.Mode().IsRegular() {
		return 0, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(tw, f)
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

func sumOf(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
