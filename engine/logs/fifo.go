package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Names of the FIFOs inside a container's run directory.
const (
	StdoutFIFO = "stdout.fifo"
	StderrFIFO = "stderr.fifo"
)

// MakeFIFOs creates dir (0700) and the container's two FIFOs in it (0600),
// and returns their paths. FIFOs that already exist are kept, so that a new
// supervisor can call it for a running container.
func MakeFIFOs(dir string) (stdoutPath, stderrPath string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("logs: create fifo dir: %w", err)
	}
	stdoutPath = filepath.Join(dir, StdoutFIFO)
	stderrPath = filepath.Join(dir, StderrFIFO)
	for _, p := range []string{stdoutPath, stderrPath} {
		if err := mkfifo(p); err != nil {
			return "", "", err
		}
	}
	return stdoutPath, stderrPath, nil
}

func mkfifo(path string) error {
	err := unix.Mkfifo(path, 0o600)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("logs: mkfifo %s: %w", path, err)
	}
	fi, serr := os.Lstat(path)
	if serr != nil {
		return fmt.Errorf("logs: mkfifo %s: %w", path, serr)
	}
	if fi.Mode().Type() != fs.ModeNamedPipe {
		return fmt.Errorf("logs: mkfifo %s: exists and is not a fifo", path)
	}
	return nil
}

// RemoveFIFOs removes the FIFOs that MakeFIFOs created in dir; missing
// ones are not an error. The directory itself is left to its owner.
func RemoveFIFOs(dir string) error {
	var errs []error
	for _, name := range []string{StdoutFIFO, StderrFIFO} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("logs: remove fifo: %w", err))
		}
	}
	return errors.Join(errs...)
}

// OpenFIFO opens the read side of a FIFO for Capture.
//
// It opens the FIFO O_RDWR (Linux defines this for FIFOs; POSIX leaves it
// open) rather than O_RDONLY: opening never waits for a writer, and since
// this descriptor counts as a writer too, a read never returns end-of-file
// when the container side closes and reopens its end. The alternative,
// O_RDONLY|O_NONBLOCK plus a dummy writer descriptor, holds two descriptors
// for the same effect. The descriptor is non-blocking and registered with
// Go's poller, so reads honour SetReadDeadline; Capture uses that to stop.
func OpenFIFO(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("logs: open fifo %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("logs: open fifo %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return nil, fmt.Errorf("logs: open fifo %s: not a fifo", path)
	}
	// os.NewFile registers a non-blocking descriptor with the poller.
	f := os.NewFile(uintptr(fd), path)
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("logs: open fifo %s: not pollable: %w", path, err)
	}
	return f, nil
}

// OpenFIFOWriter opens the write side of a FIFO, to be given to the
// container as its stdout or stderr. It too is opened O_RDWR: the pipe then
// always has a reader, so while no supervisor drains it the container's
// writes block once the pipe buffer (64 KiB by default) is full instead of
// failing with EPIPE or killing it with SIGPIPE.
func OpenFIFOWriter(path string) (*os.File, error) {
	// Without O_NONBLOCK os.NewFile leaves the descriptor out of the poller,
	// blocking, as a process expects of its stdout.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("logs: open fifo %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return nil, fmt.Errorf("logs: open fifo %s: not a fifo", path)
	}
	return os.NewFile(uintptr(fd), path), nil
}
