package runtime

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// execIO is the stdio of an exec'd process: pipes, or a pseudo-terminal,
// whose far ends only the process holds, and the goroutines that copy them
// to and from the caller's readers and writers.
type execIO struct {
	spec   ExecSpec
	child  []*os.File // the process's ends, closed once it holds them
	owned  []*os.File // berth's ends, closed when the exec ends
	sock   *os.File   // the console socket's parent end (Tty)
	stdin  *os.File   // where Stdin goes: the stdin pipe or the pty master
	output []relay    // where Stdout and Stderr come from

	copies sync.WaitGroup
	done   chan struct{} // closed when the process has exited
}

type relay struct {
	src *os.File
	dst io.Writer
}

// newExecIO makes the process's stdio and sets them in p.
func newExecIO(p *libcontainer.Process, spec ExecSpec) (*execIO, error) {
	x := &execIO{spec: spec, done: make(chan struct{})}
	if spec.Tty {
		parent, child, err := socketPair()
		if err != nil {
			return nil, err
		}
		x.sock, x.child, x.owned = parent, []*os.File{child}, []*os.File{parent}
		p.ConsoleSocket = child
		return x, nil
	}
	// Every stream is a pipe of berth's, even when the caller has nothing to
	// send or wants nothing back: left nil, the process would get the host's
	// /dev/null, which a root process in the container could chmod through
	// /proc/self/fd.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.Stdin = r
	x.child = append(x.child, r)
	if spec.Stdin != nil {
		x.owned, x.stdin = append(x.owned, w), w
	} else {
		w.Close() // end of file at once
	}
	for _, o := range []struct {
		dst io.Writer
		set *io.Writer
	}{{spec.Stdout, &p.Stdout}, {spec.Stderr, &p.Stderr}} {
		r, w, err := os.Pipe()
		if err != nil {
			x.close()
			return nil, err
		}
		x.child, x.owned = append(x.child, w), append(x.owned, r)
		x.output = append(x.output, relay{src: r, dst: o.dst})
		*o.set = w
	}
	return x, nil
}

// started runs the copies once the process runs: its ends are closed here
// (it holds its own copies), and a terminal's master is received.
func (x *execIO) started() error {
	for _, f := range x.child {
		f.Close()
	}
	x.child = nil
	if x.sock != nil {
		master, err := recvFd(x.sock)
		if err != nil {
			return err
		}
		x.owned = append(x.owned, master)
		x.stdin = master
		// Read even without Stdout: a full terminal would block the process.
		x.output = append(x.output, relay{src: master, dst: x.spec.Stdout})
		setWinSize(master, x.spec.Size)
		if x.spec.Resize != nil {
			go func() {
				for {
					select {
					case ws, ok := <-x.spec.Resize:
						if !ok {
							return
						}
						setWinSize(master, ws)
					case <-x.done:
						return
					}
				}
			}()
		}
	}
	if x.spec.Stdin != nil {
		// Not waited for: it may be blocked reading Stdin, which its owner
		// ends; closing the write side at exit makes it stop at the next
		// chunk.
		go func() {
			_, _ = io.CopyBuffer(x.stdin, x.spec.Stdin, make([]byte, 32*1024))
			if !x.spec.Tty {
				x.stdin.Close() // end-of-file for the process
			}
		}()
	}
	for _, r := range x.output {
		x.copies.Add(1)
		go x.relay(r)
	}
	return nil
}

// relay copies the process's output to its destination through one
// bounded buffer. Once the process has exited it stops when the output
// stays idle for drainIdle. A destination that fails is dropped, but the
// output is still drained, so that the process never blocks on it.
func (x *execIO) relay(r relay) {
	defer x.copies.Done()
	buf := make([]byte, 32*1024)
	dst := r.dst
	for {
		n, err := r.src.Read(buf)
		if n > 0 && dst != nil {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				dst = nil
			}
		}
		if err != nil {
			return // end of file, EIO from a pty master, or the deadline
		}
		select {
		case <-x.done:
			_ = r.src.SetReadDeadline(time.Now().Add(drainIdle))
		default:
		}
	}
}

// exited drains what the process left in its output, then closes
// everything: a process it left behind that holds the pipes or the
// terminal gets EPIPE or a hangup, and never what the caller's stdin
// brings next.
func (x *execIO) exited() {
	close(x.done)
	for _, r := range x.output {
		_ = r.src.SetReadDeadline(time.Now().Add(drainIdle))
	}
	x.copies.Wait()
	x.close()
}

func (x *execIO) close() {
	for _, f := range append(x.child, x.owned...) {
		f.Close()
	}
	x.child, x.owned = nil, nil
}

// setWinSize sets the size of the terminal whose master is f.
func setWinSize(f *os.File, ws WinSize) {
	if ws.Rows == 0 || ws.Cols == 0 {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Cols})
	})
}
