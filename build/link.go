package build

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/internal/dirfd"
)

// linker lets `COPY --from` a stage or image hard-link the files it copies
// to the store's own: the source's layers are stored directories that
// never change, on the store's filesystem like the step's upper
// directory, so a file whose owner, mode and times the copy would give it
// anyway needs no second copy of its bytes. The files cannot be linked
// through the overlay mount (another filesystem), so they are listed while
// the step runs and linked into the upper directory once it is unmounted;
// their directories are made (or copied up) through the mount as for any
// copy, and their times set again after the links.
//
// Only a file the merged view shows as the same inode as the topmost layer
// file of that path, regular, without extended attributes, and with the
// copy's owner and mode, is linked; anything else, or a target that
// exists, is copied as before.
//
// A COPY from the context links to the layer the same step made last time
// instead (prior), when it missed the cache because some sources changed:
// a target file there with the same size, times, owner and mode as the
// copy would give, and the same content (its sha256 against the context
// file's, which the step's key already took), is the file this copy
// would write. A one-file change then writes one file. The content hashes
// of the prior layer's files come from the list the step recorded with
// that layer (sums: what it copied or linked, by target), so that a
// one-file rebuild does not read the whole prior layer again; a file the
// list lacks is hashed.
type linker struct {
	srcRoot string   // where the source's layers are mounted
	layers  []string // their stored directories, topmost first
	rootfs  string   // the step's mount

	prior     string                                               // the step's last layer directory
	priorSums map[string]string                                    // its files' content hashes, by target
	sum       func(abs string, st *syscall.Stat_t) (string, error) // a context file's content hash

	// takeDirs are directory descriptors for take's lstats, a set per
	// concurrent take, closed when the step's copy ends.
	dirsMu   sync.Mutex
	takeDirs []*takeDirs

	mu      sync.Mutex
	touched map[string]bool // target directories copied up
	links   []pendingLink
	linked  map[string]bool   // the targets of links
	dirs    []dirTime         // rootfs-relative
	sums    map[string]string // content hashes of the files this copy wrote, by target
}

type pendingLink struct {
	src, rel string // the layer's file; the target below the rootfs
	fi       fs.FileInfo
	uid, gid int
	mode     os.FileMode
}

type dirTime struct {
	host  string
	mtime time.Time
}

// maxLinks keeps a file's link count below ext4's limit of 65000 with
// room for the layers that share it.
const maxLinks = 60000

func newLinker(srcRoot string, layers []string) *linker {
	return &linker{srcRoot: srcRoot, layers: layers, touched: map[string]bool{}}
}

// newContextLinker is the linker of a COPY from the context: it records
// the content hashes of the files it writes, and links to a prior layer
// once usePrior names one.
func newContextLinker(sum func(abs string, st *syscall.Stat_t) (string, error)) *linker {
	return &linker{sum: sum, touched: map[string]bool{}, sums: map[string]string{}}
}

// usePrior lets the copy link to dir, the layer the same step made last
// time, whose files have the content hashes sums (by target; may be nil).
func (l *linker) usePrior(dir string, sums map[string]string) {
	l.prior, l.priorSums = dir, sums
}

// recordSum notes the content hash of the file the copy wrote at target.
func (l *linker) recordSum(target, sum string) {
	l.mu.Lock()
	if l.sums != nil {
		l.sums[target] = sum
	}
	l.mu.Unlock()
}

// forgetSums stops the recording: the step writes files whose content the
// copy does not know (an ADD unpacking an archive), maybe over those it
// noted, so its layer has no list and the next such step hashes its files.
func (l *linker) forgetSums() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.sums = nil
	l.mu.Unlock()
}

// copied records the content hash of abs, which the copy wrote at p, when
// abs is as it was when hashed (same inode, size, mtime and ctime as mst,
// the stat the step's key took: a write since changes ctime).
func (l *linker) copied(p, abs string, mst *syscall.Stat_t) {
	if l == nil || l.sum == nil || mst == nil {
		return
	}
	target, ok := strings.CutPrefix(p, l.rootfs+"/")
	if !ok {
		return
	}
	var st unix.Stat_t
	if err := unix.Lstat(abs, &st); err != nil || st.Ino != mst.Ino || st.Size != mst.Size ||
		st.Mtim != unix.Timespec(mst.Mtim) || st.Ctim != unix.Timespec(mst.Ctim) {
		return
	}
	if sum, err := l.sum(abs, mst); err == nil {
		l.recordSum(target, sum)
	}
}

// takeSums returns what recordSum noted.
func (l *linker) takeSums() map[string]string {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sums
}

// takeDirs holds the last directory take looked in, in the prior layer
// and in each source layer: a lookup of a deep store path by its full
// path walked every component again for each of thousands of files.
type takeDirs struct {
	prior  dirfd.Last
	layers []dirfd.Last
}

func (l *linker) getDirs() *takeDirs {
	l.dirsMu.Lock()
	defer l.dirsMu.Unlock()
	if n := len(l.takeDirs); n > 0 {
		d := l.takeDirs[n-1]
		l.takeDirs = l.takeDirs[:n-1]
		return d
	}
	return &takeDirs{layers: make([]dirfd.Last, len(l.layers))}
}

func (l *linker) putDirs(d *takeDirs) {
	l.dirsMu.Lock()
	l.takeDirs = append(l.takeDirs, d)
	l.dirsMu.Unlock()
}

// closeDirs releases take's descriptors once the copy has ended.
func (l *linker) closeDirs() {
	if l == nil {
		return
	}
	l.dirsMu.Lock()
	defer l.dirsMu.Unlock()
	for _, d := range l.takeDirs {
		d.prior.Close()
		for i := range d.layers {
			d.layers[i].Close()
		}
	}
	l.takeDirs = nil
}

// lstatIn lstats dir/rel through the descriptor d keeps of its directory.
func lstatIn(d *dirfd.Last, dir, rel string, st *unix.Stat_t) error {
	p := filepath.Join(dir, rel)
	pd, name, ok := dirfd.Split(p)
	if !ok {
		return unix.Lstat(p, st)
	}
	return d.Lstat(pd, name, st)
}

// fromPrior returns the file of the prior layer at target that is what
// copying abs would make, or "", and its content hash.
func (l *linker) fromPrior(td *takeDirs, target, abs string, fi fs.FileInfo, mst *syscall.Stat_t, uid, gid int, mode os.FileMode) (string, string) {
	cand := filepath.Join(l.prior, target)
	var st unix.Stat_t
	if err := lstatIn(&td.prior, l.prior, target, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != fi.Size() ||
		st.Mtim != unix.Timespec(mst.Mtim) || int(st.Uid) != uid || int(st.Gid) != gid || st.Nlink >= maxLinks ||
		st.Mode&0o7777 != unixPerm(mode) {
		return "", ""
	}
	want, err := l.sum(abs, mst)
	if err != nil {
		return "", ""
	}
	if have, ok := l.priorSums[target]; ok {
		if have != want {
			return "", ""
		}
		return cand, want
	}
	f, err := os.Open(cand)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil || hex.EncodeToString(h.Sum(nil)) != want {
		return "", ""
	}
	return cand, want
}

// unixPerm is chmod(2)'s bits of a FileMode.
func unixPerm(m os.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

// take lists the copy of abs (a file under the source mount that fi
// describes) to p (its target on the step's mount) as a link, when it can
// be one, and reports whether it did. inNew says p's directory is one the
// copy made, so p cannot exist yet.
func (l *linker) take(p, abs string, fi fs.FileInfo, uid, gid int, mode os.FileMode, inNew bool) bool {
	if l == nil || l.rootfs == "" || !fi.Mode().IsRegular() || mode != fi.Mode().Perm()|fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) {
		return false
	}
	target, ok := strings.CutPrefix(p, l.rootfs+"/")
	if !ok {
		return false
	}
	mst, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	var src, sum string
	rel, ok := strings.CutPrefix(abs, l.srcRoot+"/")
	td := l.getDirs()
	defer l.putDirs(td)
	if l.prior != "" {
		src, sum = l.fromPrior(td, target, abs, fi, mst, uid, gid, mode)
	} else if !ok {
		return false
	}
	for i, dir := range l.layers {
		var st unix.Stat_t
		err := lstatIn(&td.layers[i], dir, rel, &st)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil || st.Ino != mst.Ino || st.Size != fi.Size() || st.Mtim != unix.Timespec(mst.Mtim) ||
			int(st.Uid) != uid || int(st.Gid) != gid || st.Nlink >= maxLinks {
			return false
		}
		src = filepath.Join(dir, rel)
		break
	}
	if src == "" {
		return false
	}
	if sz, err := unix.Llistxattr(src, nil); err != nil || sz != 0 {
		return false
	}
	if !inNew {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			return false // replacing something: through the mount, as a copy
		}
	}
	// The target's directory must be in the upper directory: a chown to
	// its own owner copies it (and its parents) up.
	parent := filepath.Dir(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.touched[parent] {
		var st unix.Stat_t
		if err := unix.Lstat(parent, &st); err != nil {
			return false
		}
		if err := os.Lchown(parent, int(st.Uid), int(st.Gid)); err != nil {
			return false
		}
		l.touched[parent] = true
	}
	l.links = append(l.links, pendingLink{src: src, rel: target, fi: fi, uid: uid, gid: gid, mode: mode})
	if l.linked == nil {
		l.linked = map[string]bool{}
	}
	l.linked[target] = true
	if sum != "" && l.sums != nil {
		l.sums[target] = sum // l.mu is held
	}
	return true
}

// supersede forgets a listed link to p, which a later source of the same
// COPY is about to write through the mount: the last source wins, and the
// link, made after the copy, would otherwise put the earlier one back.
func (l *linker) supersede(p string) {
	if l == nil || l.rootfs == "" {
		return
	}
	target, ok := strings.CutPrefix(p, l.rootfs+"/")
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.linked[target] {
		return
	}
	delete(l.linked, target)
	l.links = slices.DeleteFunc(l.links, func(k pendingLink) bool { return k.rel == target })
	delete(l.sums, target)
}

// setTimes records directory times copyTree set, to set them again in
// the upper directory after the links.
func (l *linker) setTimes(dirs []dirTime) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range dirs {
		if rel, ok := strings.CutPrefix(d.host, l.rootfs+"/"); ok {
			l.dirs = append(l.dirs, dirTime{rel, d.mtime})
		}
	}
}

// apply makes the listed links in upper (the unmounted step's upper
// directory), copying a file whose link fails, then puts back the
// directories' times.
func (l *linker) apply(upper string) error {
	if l == nil || len(l.links) == 0 {
		return nil
	}
	// Two halves of the links, in path order so that each mostly writes
	// directories of its own, are made at once: a link is the kernel's
	// work, a directory entry each, and one goroutine left a core idle.
	slices.SortFunc(l.links, func(a, b pendingLink) int { return strings.Compare(a.rel, b.rel) })
	var g errgroup.Group
	half := len(l.links) / 2
	for _, part := range [][]pendingLink{l.links[:half], l.links[half:]} {
		g.Go(func() error {
			var sd, dd dirfd.Last
			defer sd.Close()
			defer dd.Close()
			for _, k := range part {
				dst := filepath.Join(upper, k.rel)
				if err := linkAt(&sd, &dd, k.src, dst); err != nil {
					if err := copyFile(k.src, dst, k.fi, k.uid, k.gid, k.mode); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i := len(l.dirs) - 1; i >= 0; i-- {
		d := l.dirs[i]
		p := filepath.Join(upper, d.host)
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := os.Chtimes(p, d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}
