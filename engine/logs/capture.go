package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MaxLineSize is the longest line stored as one entry. A longer line is
// stored as pieces of MaxLineSize bytes marked Partial, then its rest, as
// Docker does (its copier reads through a 16 KiB buffer).
const MaxLineSize = 16 * 1024

// Capture copies the FIFO at fifoPath into w, one entry per line, each
// stamped with the time it was read and labelled with stream ("stdout" or
// "stderr"). Writers may close and reopen the FIFO at will: Capture never
// sees end-of-file (see OpenFIFO).
//
// It stops in one of two ways:
//   - exited is closed (the container is gone): Capture reads what is left
//     in the pipe until a read would block (for 2 s at most), stores it
//     and returns nil.
//   - ctx is cancelled (the supervisor is stopping): Capture stores the
//     bytes it already holds and returns ctx.Err() at once; what is still
//     in the pipe stays there for the next supervisor.
//
// A nil exited never fires. If w fails, Capture keeps reading (so that the
// container is not blocked on a full pipe), drops the entries, and returns
// the first write error when it stops.
func Capture(ctx context.Context, fifoPath, stream string, w Writer, exited <-chan struct{}) error {
	f, err := OpenFIFO(fifoPath)
	if err != nil {
		return err
	}
	defer f.Close()
	return capture(ctx, f, stream, w, exited)
}

// CaptureTerminal copies the output of a terminal (the master side of a
// tty container's pseudo-terminal) into w as stdout entries, until the
// terminal closes with the container. It splits lines as Capture does, so
// that a container writing without newlines costs the supervisor at most
// MaxLineSize of memory and the log file's rotation still holds; a
// carriage return before a newline is dropped.
//
// A read error ends it: a pty master reports EIO once its last slave
// closed, which is the normal end and returns nil.
func CaptureTerminal(r io.Reader, w Writer) error {
	s := &lineSplitter{stream: "stdout", w: w, crlf: true}
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		s.add(buf[:n], false, time.Now())
		if err != nil {
			s.add(nil, true, time.Now())
			if err == io.EOF || errors.Is(err, unix.EIO) || errors.Is(err, os.ErrClosed) {
				return s.err
			}
			return errors.Join(fmt.Errorf("logs: read terminal: %w", err), s.err)
		}
	}
}

// RawWriter is a Writer that also sees the output as it is read, before
// it is cut into lines: clients attached to a container get a prompt or a
// terminal's escape sequences at once, not at the next newline. WriteRaw
// must not keep p.
type RawWriter interface {
	Writer
	WriteRaw(stream string, p []byte)
}

// lineSplitter cuts a byte stream into entries: at each newline, and into
// pieces of MaxLineSize marked Partial when a line is longer. It is the only
// place where a container's output becomes entries, so that every stream is
// bounded the same way.
type lineSplitter struct {
	stream string
	w      Writer
	crlf   bool   // a terminal's stream: drop the '\r' of a "\r\n"
	buf    []byte // bytes read and not yet written: no newline among the first MaxLineSize+1
	err    error  // the first error of w
}

func (s *lineSplitter) emit(line []byte, partial bool, now time.Time) {
	if s.crlf && !partial && len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	err := s.w.WriteEntry(Entry{Time: now, Stream: s.stream, Line: line, Partial: partial})
	if err != nil && s.err == nil {
		s.err = err
	}
}

// add appends p and writes every complete entry; with flush, it writes the
// remainder too, as a partial entry.
func (s *lineSplitter) add(p []byte, flush bool, now time.Time) {
	if rw, ok := s.w.(RawWriter); ok && len(p) > 0 {
		rw.WriteRaw(s.stream, p)
	}
	// Lines are cut from p itself unless a partial line waits in s.buf:
	// p is a pooled read buffer, and only what is left is kept.
	rest := p
	if len(s.buf) > 0 {
		s.buf = append(s.buf, p...)
		rest = s.buf
	}
	for len(rest) > 0 {
		window := rest[:min(len(rest), MaxLineSize+1)]
		if i := bytes.IndexByte(window, '\n'); i >= 0 {
			s.emit(rest[:i], false, now)
			rest = rest[i+1:]
			continue
		}
		if len(rest) > MaxLineSize {
			s.emit(rest[:MaxLineSize], true, now)
			rest = rest[MaxLineSize:]
			continue
		}
		break
	}
	if flush && len(rest) > 0 {
		s.emit(rest, true, now)
		rest = nil
	}
	switch {
	case len(rest) == 0 && cap(s.buf) > 4096:
		s.buf = nil // a long line is over: do not hold its room
	case len(rest) == 0:
		s.buf = s.buf[:0]
	case len(s.buf) > 0:
		s.buf = s.buf[:copy(s.buf, rest)] // rest is the tail of s.buf
	default:
		s.buf = append(s.buf[:0], rest...)
	}
}

func capture(ctx context.Context, f *os.File, stream string, w Writer, exited <-chan struct{}) error {
	s := &lineSplitter{stream: stream, w: w}
	var drain atomic.Bool
	done := make(chan struct{})
	defer close(done)
	// A read blocked in the poller is woken by a deadline in the past.
	go func() {
		select {
		case <-ctx.Done():
		case <-exited:
			drain.Store(true)
		case <-done:
			return
		}
		f.SetReadDeadline(time.Unix(1, 0))
	}()

	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("logs: read %s: %w", f.Name(), err)
	}
	for {
		n, err := readPooled(rc, func(p []byte) { s.add(p, false, time.Now()) })
		switch {
		case err == nil && n == 0:
			// Not with a descriptor from OpenFIFO; the stream is over.
			s.add(nil, true, time.Now())
			return s.err
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil && drain.Load():
			err = drainFIFO(ctx, f, s)
			s.add(nil, true, time.Now())
			return errors.Join(err, s.err)
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			s.add(nil, true, time.Now())
			return errors.Join(ctx.Err(), s.err)
		default:
			s.add(nil, true, time.Now())
			return errors.Join(fmt.Errorf("logs: read %s: %w", f.Name(), err), s.err)
		}
	}
}

// readBufs are the read buffers of all captures. A capture takes one only
// once its stream has data and gives it back after handing the bytes on,
// so that the many containers that print nothing for hours hold none.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 64*1024); return &b }}

// readPooled waits until rc is readable, reads once into a pooled buffer
// and hands what it read to use. It returns 0 and no error at end of file.
func readPooled(rc syscall.RawConn, use func([]byte)) (int, error) {
	var n int
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		b := readBufs.Get().(*[]byte)
		defer readBufs.Put(b)
		for {
			n, rerr = unix.Read(int(fd), *b)
			if rerr != unix.EINTR {
				break
			}
		}
		if rerr == unix.EAGAIN {
			return false // the poller waits, with no buffer held
		}
		if n > 0 {
			use((*b)[:n])
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	return n, nil
}

// maxDrain bounds a drain: a process that outlived its container (with
// `pid: host`) and still holds the FIFO could otherwise keep it going.
const maxDrain = 2 * time.Second

// drainFIFO reads what is left in the pipe, up to the first read that
// would block (or maxDrain, or ctx). The read deadline is cleared first:
// Go's poller refuses any read on a descriptor whose deadline has passed.
func drainFIFO(ctx context.Context, f *os.File, s *lineSplitter) error {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("logs: drain %s: %w", f.Name(), err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("logs: drain %s: %w", f.Name(), err)
	}
	end := time.Now().Add(maxDrain)
	for ctx.Err() == nil && time.Now().Before(end) {
		var n int
		var rerr error
		// Returning true makes RawConn.Read try once and never wait.
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, rerr = unix.Read(int(fd), buf)
				if rerr != unix.EINTR {
					return true
				}
			}
		})
		if err != nil {
			return fmt.Errorf("logs: drain %s: %w", f.Name(), err)
		}
		if n > 0 {
			s.add(buf[:n], false, time.Now())
			continue
		}
		if rerr == nil || rerr == unix.EAGAIN {
			return nil // end of file, or nothing left
		}
		return fmt.Errorf("logs: drain %s: %w", f.Name(), rerr)
	}
	return nil
}
