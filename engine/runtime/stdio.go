package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// openStdio resolves Stdio into the files handed to the container. Files
// this function opened are returned in opened: the caller closes them once
// the container holds its own copies.
func openStdio(s Stdio) (in, out, errf *os.File, opened []*os.File, err error) {
	pick := func(path string, f *os.File, input bool) (*os.File, error) {
		if path == "" {
			if f != nil {
				return f, nil
			}
			// Never the host's /dev/null: a descriptor handed to a container
			// reaches the file behind it (a root process in there could chmod
			// the host's /dev/null through /proc/self/fd). A pipe of its own
			// reads as end-of-file, or is drained and discarded.
			nf, err := nullPipe(input)
			if err != nil {
				return nil, fmt.Errorf("stdio: %w", err)
			}
			opened = append(opened, nf)
			return nf, nil
		}
		// O_RDWR: on a FIFO the container's descriptor is then both a reader
		// and a writer, so it never sees EPIPE or EOF when the other side
		// (the supervisor) goes away, and the open never blocks.
		nf, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("stdio: %w", err)
		}
		opened = append(opened, nf)
		return nf, nil
	}
	if in, err = pick(s.StdinPath, s.Stdin, true); err != nil {
		return nil, nil, nil, opened, err
	}
	if out, err = pick(s.StdoutPath, s.Stdout, false); err != nil {
		return nil, nil, nil, opened, err
	}
	if errf, err = pick(s.StderrPath, s.Stderr, false); err != nil {
		return nil, nil, nil, opened, err
	}
	return in, out, errf, opened, nil
}

// nullPipe returns the container's end of a pipe that stands for
// /dev/null: for input, a read end whose writer is already closed (end of
// file at once); for output, a write end whose reader discards everything
// until the last writer closes it.
func nullPipe(input bool) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	if input {
		w.Close()
		return r, nil
	}
	go func() {
		_, _ = io.Copy(io.Discard, r)
		r.Close()
	}()
	return w, nil
}

// socketPair returns the two ends of a unix stream socket pair, used as
// libcontainer's console socket.
func socketPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "console-parent"), os.NewFile(uintptr(fds[1]), "console-child"), nil
}

// recvFd receives one file descriptor sent with SCM_RIGHTS over sock (the
// pty master that the container's init sends over the console socket). It
// is made non-blocking, so that Go's poller serves it: reads honour
// deadlines, and Close wakes a blocked read.
func recvFd(sock *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), name, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("recvmsg: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil || len(fds) == 0 {
			continue
		}
		for _, fd := range fds[1:] {
			unix.Close(fd)
		}
		if err := unix.SetNonblock(fds[0], true); err != nil {
			unix.Close(fds[0])
			return nil, err
		}
		return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
	}
	return nil, errors.New("no file descriptor received")
}
