package scale

import (
	"errors"
	"io"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// spliceChunk is the most one splice(2) call moves; a pipe holds 64 KiB by
// default, so a larger request would only be cut short.
const spliceChunk = 64 << 10

// spliceConn copies src to dst through a kernel pipe of its own, as
// net.TCPConn.ReadFrom does, but the pipe is closed as soon as the copy
// ends. Go's own splice keeps its pipes in a sync.Pool that only the
// garbage collector empties: after a burst of connections the supervisor
// held thousands of idle pipe descriptors for minutes.
//
// It returns nil when src reached end-of-file, else the error that ended the
// copy. Without a pipe (EMFILE) it falls back to a copy through user space.
func spliceConn(dst, src *net.TCPConn) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return copyConn(dst, src)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	rsrc, err := src.SyscallConn()
	if err != nil {
		return err
	}
	rdst, err := dst.SyscallConn()
	if err != nil {
		return err
	}
	for {
		// The pipe is empty here, so EAGAIN means the socket has nothing
		// to read: wait for the poller.
		var n int64
		var serr error
		err := rsrc.Read(func(fd uintptr) bool {
			for {
				n, serr = unix.Splice(int(fd), nil, p[1], nil, spliceChunk, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				if serr != unix.EINTR {
					return serr != unix.EAGAIN
				}
			}
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil // end of file
		}
		// The pipe holds n bytes, so EAGAIN means the socket's send
		// buffer is full.
		for n > 0 {
			var m int64
			var werr error
			err := rdst.Write(func(fd uintptr) bool {
				for {
					m, werr = unix.Splice(p[0], nil, int(fd), nil, int(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
					if werr != unix.EINTR {
						return werr != unix.EAGAIN
					}
				}
			})
			if err == nil {
				err = werr
			}
			if err != nil {
				return err
			}
			n -= m
		}
	}
}

// copyBufs serves the fallback copy: 32 KiB per direction in use, none kept
// per idle connection.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyConn copies src to dst through user space. The wrappers hide ReadFrom
// and WriteTo, which would take Go's pooled splice path again.
func copyConn(dst, src *net.TCPConn) error {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *buf)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
