package build

import (
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/internal/dirfd"
)

// dirStatter lstats a walk's entries relative to their directory: lstat
// by full path was a third of the lstats' time for a 5000-file context.
type dirStatter struct{ dirfd.Last }

// lstat returns abs's FileInfo as os.Lstat would.
func (d *dirStatter) lstat(abs string) (fs.FileInfo, error) {
	fd, name, ok := d.At(abs)
	if !ok {
		return os.Lstat(abs)
	}
	var st unix.Stat_t
	if err := dirfd.LstatAt(fd, name, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: abs, Err: err}
	}
	return newStatInfo(name, &st), nil
}

// linkAt hard-links src to dst, relative to their directories' descriptors
// kept in sd and dd.
func linkAt(sd, dd *dirfd.Last, src, dst string) error {
	sfd, sname, ok1 := sd.At(src)
	dfd, dname, ok2 := dd.At(dst)
	if !ok1 || !ok2 {
		return os.Link(src, dst)
	}
	for {
		err := unix.Linkat(sfd, sname, dfd, dname, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.LinkError{Op: "link", Old: src, New: dst, Err: err}
		}
		return nil
	}
}

// newStatInfo is os.Lstat's FileInfo for a stat made through x/sys/unix.
func newStatInfo(name string, s *unix.Stat_t) fs.FileInfo {
	return dirfd.NewInfo(name, &syscall.Stat_t{
		Dev: s.Dev, Ino: s.Ino, Nlink: s.Nlink, Mode: s.Mode, Uid: s.Uid, Gid: s.Gid,
		Rdev: s.Rdev, Size: s.Size, Blksize: s.Blksize, Blocks: s.Blocks,
		Atim: syscall.Timespec{Sec: s.Atim.Sec, Nsec: s.Atim.Nsec},
		Mtim: syscall.Timespec{Sec: s.Mtim.Sec, Nsec: s.Mtim.Nsec},
		Ctim: syscall.Timespec{Sec: s.Ctim.Sec, Nsec: s.Ctim.Nsec},
	})
}
