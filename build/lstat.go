package build

import (
	"io/fs"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dirStatter lstats a walk's entries relative to their directory, opened
// once for a run of entries that share it: lstat by full path made the
// kernel look up every component of it again for each of a 5000-file
// context's files, a third of the lstats' time.
type dirStatter struct {
	dir string
	fd  int
}

func (d *dirStatter) close() {
	if d.dir != "" {
		unix.Close(d.fd)
		d.dir = ""
	}
}

// lstat returns abs's FileInfo as os.Lstat would.
func (d *dirStatter) lstat(abs string) (fs.FileInfo, error) {
	i := strings.LastIndexByte(abs, '/')
	if i <= 0 || i == len(abs)-1 {
		return lstatPath(abs)
	}
	dir, name := abs[:i], abs[i+1:]
	if dir != d.dir {
		d.close()
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return lstatPath(abs)
		}
		d.dir, d.fd = dir, fd
	}
	var st unix.Stat_t
	for {
		err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
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

func lstatPath(abs string) (fs.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Lstat(abs, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: abs, Err: err}
	}
	return newStatInfo(abs[strings.LastIndexByte(abs, '/')+1:], &st), nil
}

// statInfo is an fs.FileInfo over a stat result; Sys is its
// *syscall.Stat_t, as an os.FileInfo's is.
type statInfo struct {
	name string
	st   syscall.Stat_t
}

func newStatInfo(name string, s *unix.Stat_t) *statInfo {
	return &statInfo{name: name, st: syscall.Stat_t{
		Dev: s.Dev, Ino: s.Ino, Nlink: s.Nlink, Mode: s.Mode, Uid: s.Uid, Gid: s.Gid,
		Rdev: s.Rdev, Size: s.Size, Blksize: s.Blksize, Blocks: s.Blocks,
		Atim: syscall.Timespec{Sec: s.Atim.Sec, Nsec: s.Atim.Nsec},
		Mtim: syscall.Timespec{Sec: s.Mtim.Sec, Nsec: s.Mtim.Nsec},
		Ctim: syscall.Timespec{Sec: s.Ctim.Sec, Nsec: s.Ctim.Nsec},
	}}
}

func (fi *statInfo) Name() string       { return fi.name }
func (fi *statInfo) Size() int64        { return fi.st.Size }
func (fi *statInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *statInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *statInfo) Sys() any           { return &fi.st }

// Mode maps the stat mode to fs.FileMode's bits.
func (fi *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if fi.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
