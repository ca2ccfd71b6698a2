package build

import (
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/internal/dirfd"
)

// dirStatter lstats a walk's entries relative to their directory: lstat
// by full path was a third of the lstats' time for a 5000-file context.
type dirStatter struct{ dirfd.Last }

// lstat returns abs's FileInfo as os.Lstat would.
func (d *dirStatter) lstat(abs string) (fs.FileInfo, error) {
	dir, name, ok := dirfd.Split(abs)
	if !ok {
		return lstatPath(abs)
	}
	fd, err := d.Open(dir)
	if err != nil {
		return lstatPath(abs)
	}
	var st unix.Stat_t
	for {
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "lstat", Path: abs, Err: err}
		}
		break
	}
	return newStatInfo(name, &st), nil
}

// linkAt hard-links src to dst, relative to their directories' descriptors
// kept in sd and dd.
func linkAt(sd, dd *dirfd.Last, src, dst string) error {
	sdir, sname, ok1 := dirfd.Split(src)
	ddir, dname, ok2 := dirfd.Split(dst)
	if !ok1 || !ok2 {
		return os.Link(src, dst)
	}
	sfd, err := sd.Open(sdir)
	if err != nil {
		return os.Link(src, dst)
	}
	dfd, err := dd.Open(ddir)
	if err != nil {
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

func lstatPath(abs string) (fs.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Lstat(abs, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: abs, Err: err}
	}
	return newStatInfo(abs[strings.LastIndexByte(abs, '/')+1:], &st), nil
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
