// Package unpack applies a layer tarball to a directory that will serve as an
// overlayfs lower layer.
//
// Every path is resolved with openat2(RESOLVE_BENEATH), so no entry can create,
// replace or link anything outside the layer directory, whether by "..", an
// absolute name, or a symlink (absolute or relative) that points out of it.
// OCI whiteouts become overlay whiteouts: ".wh.NAME" a 0/0 character device,
// ".wh..wh..opq" the xattr trusted.overlay.opaque=y on its directory.
package unpack

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	// OpaqueXattr marks an overlay directory whose lower content is hidden.
	OpaqueXattr = "trusted.overlay.opaque"
)

// ErrUnsafePath is wrapped by errors for entries that would escape the layer.
var ErrUnsafePath = errors.New("unsafe path in layer")

// Stats describes what Apply wrote.
type Stats struct {
	Files int64 // entries written
	Bytes int64 // bytes of regular-file content
}

// Apply extracts the uncompressed tar stream r into dir, which must exist.
// It is meant for a fresh directory: one layer, unpacked once.
func Apply(ctx context.Context, dir string, r io.Reader) (Stats, error) {
	rootFd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	a := &applier{root: rootFd, dir: dir, cacheFd: -1}
	defer a.close()

	tr := tar.NewReader(r)
	var st Stats
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("read layer: %w", err)
		}
		n, err := a.entry(hdr, tr)
		if err != nil {
			return st, fmt.Errorf("%s: %w", hdr.Name, err)
		}
		st.Files++
		st.Bytes += n
	}
	// Directory times last: creating their children changed them.
	sort.Slice(a.dirTimes, func(i, j int) bool { return len(a.dirTimes[i].rel) > len(a.dirTimes[j].rel) })
	for _, d := range a.dirTimes {
		pfd, base, err := a.parent(d.rel, false)
		if err != nil {
			continue
		}
		_ = unix.UtimesNanoAt(pfd, base, d.ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	return st, nil
}

type dirTime struct {
	rel string
	ts  []unix.Timespec
}

type applier struct {
	root     int
	dir      string
	cacheRel string // parent directory whose fd is cached
	cacheFd  int
	dirTimes []dirTime
}

func (a *applier) close() {
	a.dropCache()
	unix.Close(a.root)
}

func (a *applier) dropCache() {
	if a.cacheFd >= 0 {
		unix.Close(a.cacheFd)
	}
	a.cacheFd, a.cacheRel = -1, ""
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// clean turns a tar name into a path relative to the layer root, refusing
// anything that is absolute or climbs above it.
func clean(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrUnsafePath)
	}
	if path.IsAbs(name) {
		return "", fmt.Errorf("%w: absolute name %q", ErrUnsafePath, name)
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: %q leaves the layer", ErrUnsafePath, name)
	}
	return c, nil
}

func openBeneath(dirfd int, rel string) (int, error) {
	if rel == "." || rel == "" {
		return unix.Dup(dirfd)
	}
	how := unix.OpenHow{
		Flags:   unix.O_DIRECTORY | unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.EXDEV || err == unix.ELOOP {
			return -1, fmt.Errorf("%w: %q resolves outside the layer", ErrUnsafePath, rel)
		}
		return fd, err
	}
}

// parent returns a descriptor of rel's parent directory (valid until the next
// call) and rel's last element. With create, missing parents are made 0755.
func (a *applier) parent(rel string, create bool) (int, string, error) {
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if a.cacheFd >= 0 && a.cacheRel == dir {
		return a.cacheFd, base, nil
	}
	a.dropCache()
	fd, err := openBeneath(a.root, dir)
	if err == unix.ENOENT && create {
		fd, err = a.mkdirAll(dir)
	}
	if err != nil {
		if errors.Is(err, ErrUnsafePath) {
			return -1, "", err
		}
		return -1, "", &os.PathError{Op: "open", Path: dir, Err: err}
	}
	a.cacheFd, a.cacheRel = fd, dir
	return fd, base, nil
}

// mkdirAll creates each missing element of dir, resolving the existing prefix
// beneath the root every time.
func (a *applier) mkdirAll(dir string) (int, error) {
	parts := strings.Split(dir, "/")
	cur := "."
	for _, p := range parts {
		next := path.Join(cur, p)
		fd, err := openBeneath(a.root, next)
		if err == nil {
			unix.Close(fd)
			cur = next
			continue
		}
		if err != unix.ENOENT {
			return -1, err
		}
		pfd, err := openBeneath(a.root, cur)
		if err != nil {
			return -1, err
		}
		err = unix.Mkdirat(pfd, p, 0o755)
		unix.Close(pfd)
		if err != nil && err != unix.EEXIST {
			return -1, err
		}
		cur = next
	}
	return openBeneath(a.root, dir)
}

// removeExisting deletes whatever is at base in pfd, unless keepDir and it is a
// directory. It reports whether a directory was kept.
func (a *applier) removeExisting(pfd int, base string, keepDir bool) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if keepDir {
			return true, nil
		}
		// The /proc/self/fd path pins the real parent; RemoveAll never follows
		// symlinks below it.
		if err := os.RemoveAll(fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base)); err != nil {
			return false, err
		}
		return false, nil
	}
	return false, unix.Unlinkat(pfd, base, 0)
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) (int64, error) {
	rel, err := clean(hdr.Name)
	if err != nil {
		return 0, err
	}
	if rel == "." {
		return 0, nil // the layer root itself: leave it as created
	}
	base := path.Base(rel)

	// Whiteouts.
	if base == opaqueMarker {
		dir := path.Dir(rel)
		pfd, err := a.dirFd(dir)
		if err != nil {
			return 0, err
		}
		defer unix.Close(pfd)
		return 0, unix.Fsetxattr(pfd, OpaqueXattr, []byte("y"), 0)
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		victim := base[len(whiteoutPrefix):]
		if victim == "" || victim == "." || victim == ".." || strings.Contains(victim, "/") {
			return 0, fmt.Errorf("%w: bad whiteout %q", ErrUnsafePath, hdr.Name)
		}
		pfd, _, err := a.parent(rel, true)
		if err != nil {
			return 0, err
		}
		if _, err := a.removeExisting(pfd, victim, false); err != nil {
			return 0, err
		}
		return 0, unix.Mknodat(pfd, victim, unix.S_IFCHR, 0)
	}

	pfd, base, err := a.parent(rel, true)
	if err != nil {
		return 0, err
	}
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		kept, err := a.removeExisting(pfd, base, true)
		if err != nil {
			return 0, err
		}
		if !kept {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return 0, err
			}
		}
		if err := a.meta(pfd, base, hdr, mode, false); err != nil {
			return 0, err
		}
		a.dirTimes = append(a.dirTimes, dirTime{rel: rel, ts: times(hdr)})
		return 0, nil

	case tar.TypeReg: // tar.Reader turns the old TypeRegA into TypeReg or TypeDir
		if _, err := a.removeExisting(pfd, base, false); err != nil {
			return 0, err
		}
		fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return 0, err
		}
		f := os.NewFile(uintptr(fd), base)
		bp := bufPool.Get().(*[]byte)
		n, err := io.CopyBuffer(fileWriter{f}, r, *bp)
		bufPool.Put(bp)
		if err != nil {
			f.Close()
			return n, err
		}
		err = fileMeta(fd, hdr, mode)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return n, err

	case tar.TypeSymlink:
		if _, err := a.removeExisting(pfd, base, false); err != nil {
			return 0, err
		}
		// Symlink targets are kept verbatim, absolute ones included: they are
		// resolved later inside the container's root, never on the host.
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return 0, err
		}
		err := a.meta(pfd, base, hdr, mode, true)
		a.dropCache()
		return 0, err

	case tar.TypeLink:
		target, err := clean(hdr.Linkname)
		if err != nil {
			return 0, fmt.Errorf("hard link: %w", err)
		}
		if target == "." {
			return 0, fmt.Errorf("%w: hard link to the layer root", ErrUnsafePath)
		}
		tdir, tbase := path.Split(target)
		tfd, err := openBeneath(a.root, strings.TrimSuffix(tdir, "/"))
		if err != nil {
			return 0, fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		defer unix.Close(tfd)
		var st unix.Stat_t
		if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return 0, fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return 0, fmt.Errorf("hard link target %q is a directory", hdr.Linkname)
		}
		if _, err := a.removeExisting(pfd, base, false); err != nil {
			return 0, err
		}
		// linkat without AT_SYMLINK_FOLLOW links a symlink itself, not its target.
		return 0, unix.Linkat(tfd, tbase, pfd, base, 0)

	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if _, err := a.removeExisting(pfd, base, false); err != nil {
			return 0, err
		}
		typ := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			typ = unix.S_IFCHR
		case tar.TypeBlock:
			typ = unix.S_IFBLK
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(pfd, base, typ|0o600, dev); err != nil {
			return 0, err
		}
		return 0, a.meta(pfd, base, hdr, mode, false)

	case tar.TypeXGlobalHeader:
		return 0, nil
	default:
		// Unknown types (sparse, GNU long-name leftovers) carry nothing we can
		// represent; skipping them matches what docker does.
		return 0, nil
	}
}

// dirFd opens rel (a directory inside the layer), creating it if needed.
func (a *applier) dirFd(rel string) (int, error) {
	fd, err := openBeneath(a.root, rel)
	if err == unix.ENOENT {
		fd, err = a.mkdirAll(rel)
	}
	return fd, err
}

type fileWriter struct{ f *os.File }

// Write hides os.File's ReadFrom so CopyBuffer uses our large buffer.
func (w fileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func times(hdr *tar.Header) []unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
}

// fileMeta applies owner, mode (after chown, which clears setuid), xattrs and
// times to an open regular file.
func fileMeta(fd int, hdr *tar.Header, mode uint32) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for k, v := range xattrs(hdr) {
		_ = unix.Fsetxattr(fd, k, []byte(v), 0) // best effort: the filesystem may lack the namespace
	}
	return unix.UtimesNanoAt(fd, "", times(hdr), unix.AT_EMPTY_PATH)
}

// meta applies owner, mode, xattrs and times to base in pfd without following
// a symlink there.
func (a *applier) meta(pfd int, base string, hdr *tar.Header, mode uint32, isLink bool) error {
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if isLink {
		return unix.UtimesNanoAt(pfd, base, times(hdr), unix.AT_SYMLINK_NOFOLLOW)
	}
	if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if x := xattrs(hdr); len(x) > 0 {
		p := "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
		for k, v := range x {
			_ = unix.Lsetxattr(p, k, []byte(v), 0)
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		return unix.UtimesNanoAt(pfd, base, times(hdr), unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

// xattrs returns the entry's extended attributes, minus overlay's own: a layer
// must not smuggle in opaque or redirect markers.
func xattrs(hdr *tar.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out
}
