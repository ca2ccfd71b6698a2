package dirfd

import (
	"io/fs"
	"syscall"
	"time"
)

// Info is an fs.FileInfo over a stat result, as os.Lstat makes one: Sys
// is its *syscall.Stat_t. It serves the stats made through a kept
// descriptor (fstatat, fstat), which os has no constructor for.
type Info struct {
	name string
	st   syscall.Stat_t
}

// NewInfo returns the FileInfo of the entry name whose stat is st.
func NewInfo(name string, st *syscall.Stat_t) *Info { return &Info{name: name, st: *st} }

func (fi *Info) Name() string       { return fi.name }
func (fi *Info) Size() int64        { return fi.st.Size }
func (fi *Info) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *Info) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *Info) Sys() any           { return &fi.st }

// Mode maps the stat mode to fs.FileMode's bits.
func (fi *Info) Mode() fs.FileMode {
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
