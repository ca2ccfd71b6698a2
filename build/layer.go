package build

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/pgzip"
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
// within the layer kept as links. It writes the gzip blob to w (none when
// w is nil: the layer then has a diff ID and no digest) and returns the
// layer's identity and its bytes of file content; empty is true when the
// directory holds nothing.
//
// Reading the files and hashing the tar run beside compressing and
// hashing the blob (a goroutine each), with klauspost's gzip at its
// fastest level: for a 5000-file, 50 MB layer that took the step's
// compression from 2.2 s of CPU (the standard library's, in line) to
// about a third of it. The compression itself is pgzip's, 1 MB blocks
// compressed on every CPU (each primed with the previous block's tail, so
// the ratio stays; the output depends only on the input): a 6.7 MB Go
// binary's layer took 43-49 ms instead of 69-79 ms on two cores.
func writeLayer(upper string, w io.Writer) (l image.Layer, content int64, empty bool, err error) {
	type entry struct {
		rel string
		fi  fs.FileInfo
	}
	var entries []entry
	err = filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == upper {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(upper, p)
		entries = append(entries, entry{filepath.ToSlash(rel), fi})
		return nil
	})
	if err != nil {
		return l, 0, false, err
	}
	if len(entries) == 0 {
		return l, 0, true, nil
	}
	// Sorted by path as a string: a directory comes before its children.
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })

	diffHash := sha256.New()
	var out io.Writer = diffHash
	var bw *bufio.Writer
	pr, pw := io.Pipe()
	blobHash := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, blobHash)}
	compressed := make(chan error, 1)
	if w == nil {
		compressed <- nil
	} else {
		go func() {
			zw, err := pgzip.NewWriterLevel(cw, pgzip.BestSpeed)
			if err == nil {
				_, err = io.Copy(zw, pr)
				if cerr := zw.Close(); err == nil {
					err = cerr
				}
			}
			pr.CloseWithError(err) // a writer still writing gets the error
			compressed <- err
		}()
		bw = bufio.NewWriterSize(pw, 256<<10) // few handoffs to the compressor
		out = io.MultiWriter(bw, diffHash)
	}
	tw := tar.NewWriter(out)
	links := map[uint64]string{} // inode -> first name, for hard links
	buf := make([]byte, 128<<10)
	err = func() error {
		for _, e := range entries {
			n, err := addEntry(tw, upper, e.rel, e.fi, links, buf)
			if err != nil {
				return fmt.Errorf("layer: %s: %w", e.rel, err)
			}
			content += n
		}
		if err := tw.Close(); err != nil {
			return err
		}
		if bw == nil {
			return nil
		}
		return bw.Flush()
	}()
	pw.CloseWithError(err)
	if zerr := <-compressed; err == nil {
		err = zerr
	}
	if err != nil {
		return l, 0, false, err
	}
	l = image.Layer{DiffID: sumOf(diffHash), MediaType: layerMediaType}
	if w != nil {
		l.Digest, l.Size = sumOf(blobHash), cw.n
	}
	return l, content, false, nil
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
		if v, err := getxattr(p, opaqueXattr); err == nil && v == "y" {
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
	return io.CopyBuffer(tw, struct{ io.Reader }{f}, buf)
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
