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
// the layer's identity; empty is true when the directory holds nothing.
func writeLayer(upper string, w io.Writer) (l image.Layer, empty bool, err error) {
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
		return l, false, err
	}
	if len(paths) == 0 {
		return l, true, nil
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
		return l, false, err
	}
	diffHash := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diffHash))
	links := map[uint64]string{} // inode -> first name, for hard links
	for _, r := range rel {
		if err := addEntry(tw, upper, filepath.ToSlash(r), links); err != nil {
			return l, false, fmt.Errorf("layer: %s: %w", r, err)
		}
	}
	if err := tw.Close(); err != nil {
		return l, false, err
	}
	if err := zw.Close(); err != nil {
		return l, false, err
	}
	return image.Layer{DiffID: sumOf(diffHash), Digest: sumOf(blobHash), MediaType: layerMediaType, Size: cw.n}, false, nil
}

func addEntry(tw *tar.Writer, root, rel string, links map[uint64]string) error {
	p := filepath.Join(root, rel)
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	dir, base := filepath.Split(rel)
	// An overlay whiteout: a character device 0/0.
	if fi.Mode()&fs.ModeCharDevice != 0 && st != nil && st.Rdev == 0 {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + whiteoutPrefix + base, Mode: 0o600, Format: tar.FormatPAX, ModTime: fi.ModTime()})
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
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
		return err
	}
	if fi.Mode().IsRegular() && st != nil && st.Nlink > 1 {
		if first, ok := links[st.Ino]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			return tw.WriteHeader(hdr)
		}
		links[st.Ino] = rel
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if fi.IsDir() {
		if v, err := getxattr(p, opaqueXattr); err == nil && v == "y" {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel + "/" + opaqueWhiteout, Mode: 0o600, Format: tar.FormatPAX, ModTime: fi.ModTime()})
		}
	}
	if fi.Mode().IsRegular() {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(tw, f); err != nil {
			return err
		}
	}
	return nil
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
