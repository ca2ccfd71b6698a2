package build

import (
	"archive/tar"
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// copyOpts are a COPY or ADD's flags, resolved.
type copyOpts struct {
	uid, gid int
	chmod    *os.FileMode
	extract  bool    // ADD: unpack local archives
	link     *linker // COPY --from a stage or image: link instead of copying
	// inNew says the target's directory was made by this copy's walk of
	// the source it copies from, so nothing is there yet that a link
	// would replace: the link skips looking (through the overlay, a
	// lookup in every layer, a third of listing a link).
	inNew bool
}

// destPath resolves a COPY destination against the working directory,
// keeping the trailing slash that says "a directory".
func destPath(dest, workdir string) string {
	slash := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		if workdir == "" {
			workdir = "/"
		}
		dest = path.Join(workdir, dest)
	}
	dest = path.Clean(dest)
	if slash && dest != "/" {
		dest += "/"
	}
	return dest
}

// copyItems copies resolved sources into rootfs at dest with Docker's
// rules: a directory's contents (not the directory) go into dest; a file
// goes into dest when dest ends with "/" or is a directory, else becomes
// dest; several sources need a directory destination.
func copyItems(rootfs string, src *source, items []item, dest string, o copyOpts, many bool) error {
	dirDest := strings.HasSuffix(dest, "/")
	if many && !dirDest {
		return fmt.Errorf("when using COPY with more than one source file, the destination must be a directory and end with a /")
	}
	clean := path.Clean(dest)
	if !dirDest {
		if p, err := securejoin.SecureJoin(rootfs, clean); err == nil {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				dirDest = true
			}
		}
	}
	for _, it := range items {
		switch {
		case it.info.IsDir():
			if err := copyTree(rootfs, src, it, clean, o); err != nil {
				return err
			}
		case o.extract && !it.keepArchive && isArchive(it.abs):
			o.link.forgetSums() // the archive may replace what was copied
			if err := extractArchive(rootfs, it.abs, clean); err != nil {
				return fmt.Errorf("extract %s: %w", it.rel, err)
			}
		default:
			target := clean
			if dirDest {
				target = path.Join(clean, path.Base(it.rel))
			}
			if err := mkdirs(rootfs, path.Dir(target), o); err != nil {
				return err
			}
			if err := copyOne(rootfs, it.abs, target, it.info, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyWorkers is how many files a COPY writes at once, so that waits on
// the filesystem overlap. On the loaded 2-core test machine, 1 and 8
// workers were within its noise (8–18 s for 5000 files, as cp -a).
const copyWorkers = 4

// copyTree copies the contents of a directory source into dir.
// A dir it creates takes the source directory's mode and times, as with
// Docker; an existing one keeps its own. Directories are made in walk
// order, files copied by a few workers, and directory times set last
// (writing into a directory changes its mtime). A directory's path in the
// rootfs is resolved once, when it is made (it is then a directory of the
// copy's own, not a symlink), not again for every file in it.
func copyTree(rootfs string, src *source, it item, dir string, o copyOpts) error {
	existed := false
	if p, err := securejoin.SecureJoin(rootfs, dir); err == nil {
		_, err := os.Lstat(p)
		existed = err == nil
	}
	if err := mkdirs(rootfs, dir, o); err != nil {
		return err
	}
	top, err := securejoin.SecureJoin(rootfs, dir)
	if err != nil {
		return err
	}
	var dirs []dirTime
	hosts := map[string]string{"": top} // sub -> its path on the host
	made := map[string]bool{}           // subs whose directory the walk made
	var g errgroup.Group
	g.SetLimit(copyWorkers)
	err = src.walk(it, func(abs, sub string, fi fs.FileInfo) error {
		if sub == "" {
			if existed || dir == "/" {
				return nil // the directory itself: its contents go into dir
			}
			dirs = append(dirs, dirTime{top, fi.ModTime()})
			return copyAt(top, abs, fi, o)
		}
		parent, ok := hosts[path.Dir("/" + sub)[1:]]
		if !ok {
			// Below a directory .dockerignore left out (a "!" pattern
			// keeps something in it): resolved as it comes.
			var err error
			if parent, err = securejoin.SecureJoin(rootfs, path.Dir(path.Join(dir, sub))); err != nil {
				return err
			}
		}
		p := filepath.Join(parent, path.Base(sub))
		if fi.IsDir() {
			hosts[sub] = p
			dirs = append(dirs, dirTime{p, fi.ModTime()})
			created, err := copyDirAt(p, abs, fi, o)
			made[sub] = created
			return err
		}
		fo := o
		fo.inNew = ok && made[path.Dir("/" + sub)[1:]]
		g.Go(func() error { return copyAt(p, abs, fi, fo) })
		return nil
	})
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i].host, dirs[i].mtime, dirs[i].mtime); err != nil {
			return err
		}
	}
	o.link.setTimes(dirs)
	return nil
}

// mkdirs creates dir and its missing parents in rootfs, owned as the COPY
// says (BuildKit gives created directories the --chown owner).
func mkdirs(rootfs, dir string, o copyOpts) error {
	if dir == "/" || dir == "." {
		return nil
	}
	p, err := securejoin.SecureJoin(rootfs, dir)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(p); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if err := mkdirs(rootfs, path.Dir(dir), o); err != nil {
		return err
	}
	p, err = securejoin.SecureJoin(rootfs, dir)
	if err != nil {
		return err
	}
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return os.Lchown(p, o.uid, o.gid)
}

// copyOne writes one file, directory or symlink at target (a path inside
// rootfs whose parent exists), with the source's mode and times and the
// COPY's owner.
func copyOne(rootfs, abs, target string, fi fs.FileInfo, o copyOpts) error {
	parent, err := securejoin.SecureJoin(rootfs, path.Dir(target))
	if err != nil {
		return err
	}
	return copyAt(filepath.Join(parent, path.Base(target)), abs, fi, o)
}

// copyAt is copyOne at p, the target's path on the host, whose parent is a
// directory of the rootfs (resolved, no symlink on the way).
func copyAt(p, abs string, fi fs.FileInfo, o copyOpts) error {
	_, err := copyDirAt(p, abs, fi, o)
	return err
}

// copyDirAt is copyAt that also reports whether it made p, a directory
// that was not there.
func copyDirAt(p, abs string, fi fs.FileInfo, o copyOpts) (created bool, err error) {
	mode := fi.Mode().Perm() | fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
	if o.chmod != nil {
		mode = *o.chmod
	}
	if !fi.Mode().IsRegular() {
		o.link.supersede(p)
	}
	switch {
	case fi.IsDir():
		if cur, err := os.Lstat(p); err == nil && !cur.IsDir() {
			if err := os.Remove(p); err != nil {
				return false, err
			}
		}
		err := os.Mkdir(p, 0o700)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return false, err
		}
		created = err == nil
	case fi.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(abs)
		if err != nil {
			return false, err
		}
		if err := removeNonDir(p); err != nil {
			return false, err
		}
		if err := os.Symlink(link, p); err != nil {
			return false, err
		}
		return false, os.Lchown(p, o.uid, o.gid)
	case fi.Mode().IsRegular():
		if o.link.take(p, abs, fi, o.uid, o.gid, mode, o.inNew) {
			return false, nil
		}
		o.link.supersede(p)
		if err := copyFile(abs, p, fi, o.uid, o.gid, mode); err != nil {
			return false, err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		o.link.copied(p, abs, st)
		return false, nil
	default:
		return false, nil // devices, sockets and FIFOs are not copied
	}
	if err := os.Lchown(p, o.uid, o.gid); err != nil {
		return created, err
	}
	if err := os.Chmod(p, mode); err != nil {
		return created, err
	}
	return created, os.Chtimes(p, fi.ModTime(), fi.ModTime())
}

func removeNonDir(p string) error {
	if cur, err := os.Lstat(p); err == nil {
		if cur.IsDir() {
			return fmt.Errorf("cannot overwrite directory %s with a file", p)
		}
		return os.Remove(p)
	}
	return nil
}

// copyFile writes the regular file from at to (replacing a file or link
// there) with owner, mode and from's times, set through the open file: one
// path lookup for the new file rather than one per attribute.
func copyFile(from, to string, fi fs.FileInfo, uid, gid int, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		if err := removeNonDir(to); err != nil {
			return err
		}
		out, err = os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return err
	}
	err = func() error {
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		// Owner before mode: a chown clears the setuid and setgid bits.
		if err := out.Chown(uid, gid); err != nil {
			return err
		}
		if err := out.Chmod(mode); err != nil {
			return err
		}
		return futimens(out, fi.ModTime())
	}()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// futimens sets a file's access and modification times to t through its
// descriptor (utimensat with a NULL path, as glibc's futimens).
func futimens(f *os.File, t time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	var errno syscall.Errno
	err := withFd(f, func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		return &os.PathError{Op: "futimens", Path: f.Name(), Err: errno}
	}
	return nil
}

func withFd(f *os.File, fn func(fd uintptr)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(fn)
}

// isArchive reports whether ADD should unpack the file: a tar, plain or
// compressed with gzip or bzip2 (the magic numbers decide, not the name).
func isArchive(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	r, err := decompress(bufio.NewReader(f))
	if err != nil {
		return false
	}
	_, err = tar.NewReader(r).Next()
	return err == nil
}

func decompress(br *bufio.Reader) (io.Reader, error) {
	magic, _ := br.Peek(3)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return gzip.NewReader(br)
	case len(magic) == 3 && string(magic) == "BZh":
		return bzip2.NewReader(br), nil
	}
	return br, nil
}

// extractArchive unpacks a tar into dir of rootfs, keeping the archive's
// owners and modes; no entry can leave rootfs.
func extractArchive(rootfs, archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := decompress(bufio.NewReader(f))
	if err != nil {
		return err
	}
	if err := mkdirs(rootfs, dir, copyOpts{}); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean("/" + hdr.Name)
		target := path.Join(dir, name)
		if err := mkdirs(rootfs, path.Dir(target), copyOpts{}); err != nil {
			return err
		}
		parent, err := securejoin.SecureJoin(rootfs, path.Dir(target))
		if err != nil {
			return err
		}
		p := filepath.Join(parent, path.Base(target))
		mode := os.FileMode(hdr.Mode).Perm() | 0o700
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(p, mode); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		case tar.TypeReg:
			if err := removeNonDir(p); err != nil {
				return err
			}
			out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := removeNonDir(p); err != nil {
				return err
			}
			if err := os.Symlink(hdr.Linkname, p); err != nil {
				return err
			}
		case tar.TypeLink:
			old, err := securejoin.SecureJoin(rootfs, path.Join(dir, path.Clean("/"+hdr.Linkname)))
			if err != nil {
				return err
			}
			if err := removeNonDir(p); err != nil {
				return err
			}
			if err := os.Link(old, p); err != nil {
				return err
			}
			continue
		default:
			continue // devices and FIFOs are left out
		}
		if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(p, unixMode(uint64(hdr.Mode))); err != nil {
				return err
			}
			_ = unix.UtimesNano(p, []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())})
		}
	}
}

// parseChmod reads COPY --chmod's octal mode.
func parseChmod(s string) (*os.FileMode, error) {
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return nil, fmt.Errorf("invalid --chmod %q: only octal modes are supported", s)
	}
	m := unixMode(n)
	return &m, nil
}

// unixMode turns permission bits as in chmod(2) into Go's FileMode.
func unixMode(n uint64) os.FileMode {
	m := os.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}
