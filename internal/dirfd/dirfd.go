// Package dirfd keeps a directory's descriptor for the *at system calls
// of a run of paths in it: a call by full path makes the kernel look up
// every component of the path again, each time, which for thousands of
// files in deep store paths cost more than the calls' own work.
package dirfd

import (
	"strings"

	"golang.org/x/sys/unix"
)

// Last holds the last directory it opened (O_PATH), or the error opening
// it gave: the directories a run of calls names do not come and go under
// it (a missing one is missing for the whole run). The zero value holds
// none; Close releases it.
type Last struct {
	dir string
	fd  int
	err error
}

// Open returns a descriptor of dir, the one it holds when dir is the last
// (or the error it gave).
func (d *Last) Open(dir string) (int, error) {
	if dir == d.dir && dir != "" {
		return d.fd, d.err
	}
	d.Close()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	d.dir, d.fd, d.err = dir, fd, err
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// Close releases the descriptor held.
func (d *Last) Close() {
	if d.dir != "" && d.err == nil {
		unix.Close(d.fd)
	}
	d.dir, d.err = "", nil
}

// Lstat is unix.Lstat of dir's entry name, relative to the descriptor
// held (or opened) for dir; a dir that failed to open gives its error.
func (d *Last) Lstat(dir, name string, st *unix.Stat_t) error {
	fd, err := d.Open(dir)
	if err != nil {
		return err
	}
	return LstatAt(fd, name, st)
}

// At returns, for the clean absolute path p, the descriptor of its
// directory and its last element, for an *at call; ok is false when p has
// no directory worth one (see Split) or it could not be opened, and the
// caller then uses p whole, as the plain call would.
func (d *Last) At(p string) (dirfd int, name string, ok bool) {
	dir, name, ok := Split(p)
	if !ok {
		return -1, "", false
	}
	fd, err := d.Open(dir)
	if err != nil {
		return -1, "", false
	}
	return fd, name, true
}

// LstatAt is fstatat(dirfd, name) without following a last symlink.
func LstatAt(dirfd int, name string, st *unix.Stat_t) error {
	for {
		err := unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

// Split cuts a clean absolute path at its last slash; ok is false for "/"
// and paths directly below it, where a descriptor gains nothing.
func Split(p string) (dir, name string, ok bool) {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 || i == len(p)-1 {
		return "", "", false
	}
	return p[:i], p[i+1:], true
}
