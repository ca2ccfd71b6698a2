package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/engine/image/unpack"
)

// Target is a mount point the runtime needs in a container's root: a file
// (a bind-mounted /etc/hosts, the init binary) or a directory (/proc).
type Target struct {
	Path string // absolute, in the container
	Dir  bool
}

// The init layer (docker's idea) holds the mount points that the runtime
// would otherwise create in each container's writable layer: one shared,
// read-only lower directory per image and set of targets, just above the
// image's layers. Each container then gets no copy-up of /etc or /sbin and
// no empty files in its upper directory (six new inodes fewer per
// container, each about 1 ms of CPU on an ext4 without journal under
// churn). The merged view is the one the runtime would have made: only
// targets missing from the image are added, at the place the runtime would
// create them (symlinks among the parents followed inside the root),
// parents that the image has are copied with their mode, owner, times and
// extended attributes, and missing ones are made as the runtime makes
// them (0755, root). A target the image has in any form, or whose parent
// is not a directory, is left to the runtime as before. Files from a
// lower layer never show in the upper directory, so a diff of the upper
// directory is unchanged; export and commit see the merged view, as
// before.
//
// initVersion changes the directories' names when what goes into them
// changes, so that an old layer is never taken for a new one.
const initVersion = "1"

// initDirName names the init layer of image id for targets: the image's
// hex ID (gcLocked removes the layers of images that are gone) and a hash
// of the targets.
func initDirName(id string, targets []Target) string {
	h := sha256.New()
	h.Write([]byte(initVersion + "\n"))
	for _, t := range targets {
		if t.Dir {
			h.Write([]byte("d "))
		} else {
			h.Write([]byte("f "))
		}
		h.Write([]byte(path.Clean("/"+t.Path) + "\n"))
	}
	return hexOf(id) + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// initLayer returns the init layer of img for targets, made when missing.
// lowers are the image's layer directories, top first. The caller holds
// the gc lock shared: several mounts may make the same layer at once, and
// the first rename wins.
func (s *Store) initLayer(img *Image, lowers []string, targets []Target) (string, error) {
	dir := s.path("init", initDirName(img.ID, targets))
	if _, err := os.Lstat(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(s.path("init"), 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(s.path("tmp"), "init-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	// The layer's root is never seen (an upper directory covers it), but
	// overlay wants lower directories searchable.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	b := initBuilder{view: mergedView(lowers), dir: tmp, made: map[string]bool{}}
	for _, t := range targets {
		if err := b.add(t); err != nil {
			return "", err
		}
	}
	if err := b.finish(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Lstat(dir); serr == nil {
			return dir, nil // another mount made it first
		}
		return "", err
	}
	return dir, nil
}

// mergedView reads the image's files as overlay shows them, without
// mounting: layer directories, top first.
type mergedView []string

// node is one name in the merged view: its host paths in the layers that
// merge into it (one unless it is a directory), top first, and the top
// one's mode.
type node struct {
	paths []string
	mode  fs.FileMode
}

func (v mergedView) root() node { return node{paths: v, mode: fs.ModeDir} }

// child looks name up in directory n as overlay does: the topmost layer
// that has it decides; a whiteout hides it; a directory merges with the
// directories below it down to an opaque one or a non-directory.
func (v mergedView) child(n node, name string) (node, bool, error) {
	var out node
	for _, p := range n.paths {
		q := filepath.Join(p, name)
		fi, err := os.Lstat(q)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return node{}, false, err
		}
		if len(out.paths) == 0 {
			if isWhiteout(fi) {
				return node{}, false, nil
			}
			out.mode = fi.Mode()
		} else if !fi.IsDir() {
			break
		}
		out.paths = append(out.paths, q)
		if !fi.IsDir() || IsOpaque(q) {
			break
		}
	}
	return out, len(out.paths) > 0, nil
}

func isWhiteout(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0
}

// IsOpaque reports whether the directory p of a layer or an overlay
// upper directory is opaque: it hides what the layers below have there.
func IsOpaque(p string) bool {
	var b [1]byte
	n, err := unix.Lgetxattr(p, unpack.OpaqueXattr, b[:])
	return err == nil && n == 1 && b[0] == 'y'
}

// initBuilder fills an init layer's directory.
type initBuilder struct {
	view mergedView
	dir  string
	made map[string]bool // directories made, by path in the container
	// copied are directories copied from the image (their times are set
	// last, once their entries are made), with the image's host path.
	copied [][2]string
}

// add puts target t into the layer if the image lacks it and the runtime
// would create it, resolving the path as the runtime does (libcontainer
// follows symlinks among the parents inside the root).
func (b *initBuilder) add(t Target) error {
	todo := splitClean(t.Path)
	if len(todo) == 0 {
		return nil
	}
	cur, at := b.view.root(), []string{}
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if name == ".." {
			if len(at) > 0 {
				at = at[:len(at)-1]
			}
			var err error
			if cur, err = b.walk(at); err != nil {
				return err
			}
			continue
		}
		n, ok, err := b.view.child(cur, name)
		if err != nil {
			return err
		}
		if !ok {
			// Missing: made here, with the parents still to come, as the
			// runtime's MkdirAll would; unless a ".." would climb back
			// through what is made.
			if slices.Contains(todo, "..") {
				return nil
			}
			return b.create(at, append([]string{name}, todo...), t.Dir)
		}
		if len(todo) == 0 {
			return nil // the image has it: the runtime uses it as it is
		}
		switch {
		case n.mode&fs.ModeSymlink != 0:
			if links++; links > 40 {
				return nil
			}
			target, err := os.Readlink(n.paths[0])
			if err != nil {
				return err
			}
			if path.IsAbs(target) {
				at, cur = []string{}, b.view.root()
			}
			todo = append(splitClean(target), todo...)
		case n.mode.IsDir():
			cur, at = n, append(at, name)
		default:
			return nil // a parent that is a file: the runtime reports it
		}
	}
	return nil
}

// walk looks up a resolved directory path (no symlinks) from the root.
func (b *initBuilder) walk(at []string) (node, error) {
	cur := b.view.root()
	for _, name := range at {
		n, ok, err := b.view.child(cur, name)
		if err != nil {
			return node{}, err
		}
		if !ok {
			return node{}, fs.ErrNotExist
		}
		cur = n
	}
	return cur, nil
}

// create makes, under the image's directory at (which exists, as do its
// parents), the missing directories rest[:len(rest)-1] and the target
// rest[len(rest)-1].
func (b *initBuilder) create(at, rest []string, dir bool) error {
	// The existing parents, copied from the image.
	cur := b.view.root()
	for i, name := range at {
		n, _, err := b.view.child(cur, name)
		if err != nil {
			return err
		}
		cur = n
		if err := b.copyDir(path.Join(at[:i+1]...), n.paths[0]); err != nil {
			return err
		}
	}
	p := path.Join(at...)
	for i, name := range rest {
		p = path.Join(p, name)
		host := filepath.Join(b.dir, p)
		if i < len(rest)-1 || dir {
			if b.made[p] {
				continue
			}
			if err := os.Mkdir(host, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(host, 0o755); err != nil { // whatever the umask
				return err
			}
			b.made[p] = true
			continue
		}
		f, err := os.OpenFile(host, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, fs.ErrExist) {
			return nil // a target named twice
		}
		if err != nil {
			return err
		}
		err = f.Chmod(0o644)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// copyDir makes directory p of the layer as the image's src is: mode,
// owner and extended attributes (overlay's own left out: an opaque mark
// would hide the image's entries); times are set by finish.
func (b *initBuilder) copyDir(p, src string) error {
	if b.made[p] {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	host := filepath.Join(b.dir, p)
	if err := os.Mkdir(host, 0o700); err != nil {
		return err
	}
	if err := os.Lchown(host, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	// After the chown, which clears set-id bits.
	if err := unix.Chmod(host, st.Mode&07777); err != nil {
		return err
	}
	if err := copyXattrs(src, host); err != nil {
		return err
	}
	b.made[p] = true
	b.copied = append(b.copied, [2]string{host, src})
	return nil
}

// finish sets the copied directories' times, deepest first, now that
// nothing more is made in them.
func (b *initBuilder) finish() error {
	for i := len(b.copied) - 1; i >= 0; i-- {
		host, src := b.copied[i][0], b.copied[i][1]
		var st unix.Stat_t
		if err := unix.Lstat(src, &st); err != nil {
			return err
		}
		ts := []unix.Timespec{st.Atim, st.Mtim}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, host, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

func copyXattrs(src, dst string) error {
	names, err := xattrNames(src, -1)
	if errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		val, err := getxattr(src, -1, name)
		if err != nil {
			return err
		}
		if err := unix.Lsetxattr(dst, name, []byte(val), 0); err != nil {
			return err
		}
	}
	return nil
}

// splitClean cuts a path into its elements, "." and empty ones dropped.
func splitClean(p string) []string {
	var out []string
	for _, e := range strings.Split(p, "/") {
		if e != "" && e != "." {
			out = append(out, e)
		}
	}
	return out
}
