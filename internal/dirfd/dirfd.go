// Package dirfd keeps a directory's descriptor for the *at system calls
// of a run of paths in it: a call by full path makes the kernel look up
// every component of the path again, each time, which for thousands of
// files in deep store paths cost more than the calls' own work.
package dirfd

import (
	"strings"

	"golang.org/x/sys/unix"
)

// Last holds the last directory it opened (O_PATH). The zero value holds
// none; Close releases it.
type Last struct {
	dir string
	fd  int
}

// Open returns a descriptor of dir, the one it holds when dir is the last.
func (d *Last) Open(dir string) (int, error) {
	if dir == d.dir && dir != "" {
		return d.fd, nil
	}
	d.Close()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	d.dir, d.fd = dir, fd
	return fd, nil
}

// Close releases the descriptor held.
func (d *Last) Close() {
	if d.dir != "" {
		unix.Close(d.fd)
		d.dir = ""
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
