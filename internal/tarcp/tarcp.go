// Package tarcp copies files as tar streams, as `berth cp` moves them
// between the host and a container: Write archives one path, Extract
// unpacks a stream under a directory without ever leaving it.
package tarcp

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// bufSize bounds each copy: a stream of any size costs this much memory.
const bufSize = 32 * 1024

// Write archives the file, directory or symlink at src to w, its entries
// named under root (root itself, root/a, root/a/b, ...). With follow, a
// symlink at src is archived as what it points to; links below src are
// always kept as links.
func Write(w io.Writer, src, root string, follow bool) error {
	tw := tar.NewWriter(w)
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if follow && fi.Mode()&fs.ModeSymlink != 0 {
		if fi, err = os.Stat(src); err != nil {
			return err
		}
	}
	buf := make([]byte, bufSize)
	if err := add(tw, src, root, fi, buf); err != nil {
		return err
	}
	if fi.IsDir() {
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == src {
				return nil
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return add(tw, p, path.Join(root, filepath.ToSlash(rel)), info, buf)
		})
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// File is one host file of a WriteFiles archive and the name it takes.
type File struct {
	Src, Name string
}

// WriteFiles writes the given files, each alone (a directory without its
// contents), as one tar stream: a batch of changes crosses the socket once.
// A file gone since it was listed is skipped: it is a deletion the caller
// sees on its next look.
func WriteFiles(w io.Writer, files []File) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, bufSize)
	for _, f := range files {
		fi, err := os.Lstat(f.Src)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := add(tw, f.Src, f.Name, fi, buf); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return tw.Close()
}

func add(tw *tar.Writer, p, name string, fi fs.FileInfo, buf []byte) error {
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	h.Name = name
	if fi.IsDir() {
		h.Name += "/"
	}
	h.Uname, h.Gname = "", ""
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(tw, io.LimitReader(f, h.Size), buf)
	return err
}

// Options say how Extract names and owns what it writes.
type Options struct {
	// Rename replaces a leading path element From by To ("" drops it: the
	// contents of a directory land in the target itself).
	From, To string
	// KeepOwner keeps the archive's uid and gid; else files belong to
	// Uid and Gid.
	KeepOwner bool
	Uid, Gid  int
	// Resolve maps a directory of the archive (relative to the target, ""
	// for the target itself) to a host path; nil resolves it inside dir
	// with securejoin. A container's copy resolves it as the container
	// would, through its mounts.
	Resolve func(dir string) (string, error)
}

// Extract unpacks the tar stream r under dir. Every name is resolved
// inside dir, symlinks included (they are followed as if dir were /), so
// nothing is ever written outside it; an existing symlink in the way of a
// new entry is replaced, never written through.
func Extract(r io.Reader, dir string, o Options) error {
	tr := tar.NewReader(r)
	buf := make([]byte, bufSize)
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := path.Clean("/" + h.Name)[1:]
		if o.From != "" {
			first, rest, _ := strings.Cut(name, "/")
			if first == o.From {
				name = path.Join(o.To, rest)
			}
		}
		if name == "" || name == "." {
			// The root itself, with its contents going into dir.
			if h.Typeflag == tar.TypeDir {
				continue
			}
			return errors.New("cannot copy a file onto a directory's contents")
		}
		var parent string
		if o.Resolve != nil {
			parent, err = o.Resolve(strings.TrimPrefix(path.Dir(name), "."))
		} else {
			parent, err = securejoin.SecureJoin(dir, path.Dir(name))
		}
		if err != nil {
			return err
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		target := filepath.Join(parent, path.Base(name))
		if fi, err := os.Lstat(target); err == nil && (fi.Mode()&fs.ModeSymlink != 0 || (h.Typeflag != tar.TypeDir && fi.Mode().IsRegular())) {
			if err := os.Remove(target); err != nil {
				return err
			}
		} else if err == nil && fi.IsDir() && h.Typeflag != tar.TypeDir {
			return fmt.Errorf("cannot overwrite directory %q with non-directory", name)
		}
		mode := os.FileMode(h.Mode).Perm() | os.FileMode(h.Mode)&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, mode); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			dirs = append(dirs, dirTime{target, h.ModTime})
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|unix.O_NOFOLLOW, mode)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(f, tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			ln := path.Clean("/" + h.Linkname)[1:]
			var src string
			if o.Resolve != nil {
				var d string
				if d, err = o.Resolve(strings.TrimPrefix(path.Dir(ln), ".")); err == nil {
					src = filepath.Join(d, path.Base(ln))
				}
			} else {
				src, err = securejoin.SecureJoin(dir, ln)
			}
			if err != nil {
				return err
			}
			if err := os.Link(src, target); err != nil {
				return err
			}
		default:
			continue // devices and FIFOs are not copied
		}
		uid, gid := o.Uid, o.Gid
		if o.KeepOwner {
			uid, gid = h.Uid, h.Gid
		}
		if err := os.Lchown(target, uid, gid); err != nil && !errors.Is(err, syscall.EPERM) {
			return err
		}
		if h.Typeflag != tar.TypeSymlink {
			_ = os.Chmod(target, mode) // after chown, which clears setuid bits
			_ = os.Chtimes(target, h.ModTime, h.ModTime)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Chtimes(dirs[i].path, dirs[i].t, dirs[i].t)
	}
	return nil
}
