package supervisor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/engine/logs"
	"github.com/berthrun/berth/supervisor/stream"
)

// AttachRequest connects the CLI to a running container's main process,
// as `berth attach` and an attached `berth run` do: its output as it is
// captured, and its input when it has a terminal or stdin_open.
type AttachRequest struct {
	Container string `json:"container"` // the container's ID
	// Stdin relays the CLI's input (ignored for a container whose stdin is
	// closed).
	Stdin bool `json:"stdin,omitempty"`
	// DetachKeys end the attachment, not the process (e.g. ctrl-p,ctrl-q).
	DetachKeys string `json:"detach_keys,omitempty"`
	// Rows and Cols are the terminal's size at the start (tty containers).
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// hub hands a container's output to the clients attached to it. The
// output passes through it on its way to the log (see teeLog), so a client
// sees exactly what the log gets, from the moment it subscribed.
type hub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

// subscriber is one attached client. Its queue is bounded: a client that
// reads slowly slows the container's output down, as with docker attach,
// and one that went away (done) never blocks it.
type subscriber struct {
	out  chan chunk
	done chan struct{}
	once sync.Once
}

type chunk struct {
	kind stream.Kind
	p    []byte
}

func (c *container) attached() *hub {
	c.hubOnce.Do(func() { c.hub = &hub{subs: map[*subscriber]struct{}{}} })
	return c.hub
}

func (h *hub) subscribe() *subscriber {
	s := &subscriber{out: make(chan chunk, 16), done: make(chan struct{})}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	s.once.Do(func() { close(s.done) })
}

func (h *hub) publish(k stream.Kind, p []byte) {
	h.mu.Lock()
	if len(h.subs) == 0 {
		h.mu.Unlock()
		return
	}
	subs := make([]*subscriber, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		b := append([]byte(nil), p...)
		select {
		case s.out <- chunk{k, b}:
		case <-s.done:
		}
	}
}

// teeLog is a container's log writer that also feeds its hub.
type teeLog struct {
	*logs.File
	h *hub
}

func (t teeLog) WriteRaw(name string, p []byte) {
	k := stream.Stdout
	if name == "stderr" {
		k = stream.Stderr
	}
	t.h.publish(k, p)
}

// output is where the container's output goes: its log, and its hub.
// c.mu is held.
func (c *container) output() logs.Writer {
	if c.logFile == nil {
		return nil
	}
	return teeLog{File: c.logFile, h: c.attached()}
}

// stdinTarget opens where an attached client's input goes, or returns nil
// when the process's stdin is closed: the terminal's master, the pipe of
// an interactive one-off, or the stdin_open FIFO.
func (c *container) stdinTarget() (w io.Writer, closeFn func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctr == nil {
		return nil, nil, fmt.Errorf("container %s is not running", c.rec.Name)
	}
	switch {
	case c.rec.Config.Tty:
		if con := c.ctr.Console(); con != nil {
			return con, func() {}, nil // the terminal stays: another client may attach
		}
	case c.runStdin != nil:
		w := c.runStdin
		return w, func() { w.Close() }, nil // end-of-file for the process
	case c.rec.Config.StdinOpen:
		f, err := logs.OpenFIFOWriter(filepath.Join(c.s.paths.FIFODir(c.rec.ID), "stdin.fifo"))
		if err != nil {
			return nil, nil, err
		}
		return f, func() { f.Close() }, nil
	}
	return nil, nil, nil
}

// setConsoleSize sets the size of a tty container's terminal; the kernel
// sends the process SIGWINCH.
func (c *container) setConsoleSize(rows, cols uint16) {
	c.mu.Lock()
	ctr := c.ctr
	c.mu.Unlock()
	if ctr == nil || rows == 0 || cols == 0 {
		return
	}
	con := ctr.Console()
	if con == nil {
		return
	}
	if rc, err := con.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
		})
	}
}

// hijack answers 101 and takes the connection over for frames.
func hijack(w http.ResponseWriter) (net.Conn, *bufio.Reader, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("the request needs a connection of its own")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + upgradeProto + "\r\n\r\n")
	if err := brw.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, brw.Reader, nil
}

// session relays one attached client: the hub's output to it, its input
// to the process, its sizes to the terminal, its signals to the process.
// It returns when the run ends (exited closes, and the code is sent), or
// when the client goes away or types the detach keys (the process goes on).
// The caller has subscribed sub before the output it must see began.
type session struct {
	c          *container
	conn       net.Conn
	br         *bufio.Reader
	sub        *subscriber
	stdin      bool
	detachKeys []byte
	// final runs once the process exited and its output was sent, before
	// the exit frame (run --rm removes the container there).
	final func()
}

func (se *session) run(exited <-chan struct{}) {
	c, fw := se.c, stream.NewWriter(se.conn)
	gone := make(chan struct{}) // the client's side ended
	detached := make(chan struct{})
	var in io.Writer
	closeIn := func() {}
	if se.stdin {
		w, cl, err := c.stdinTarget()
		if err != nil {
			c.s.logf("attach to %s: %v", c.rec.Name, err)
		}
		if w != nil {
			in, closeIn = w, cl
		}
	}
	go func() {
		defer close(gone)
		var once sync.Once
		closeOnce := func() { once.Do(closeIn) }
		defer closeOnce()
		fr := stream.NewReader(se.br)
		var typed []byte // the tail of the input that may start the detach keys
		for {
			k, p, err := fr.Next()
			if err != nil {
				return
			}
			switch k {
			case stream.Stdin:
				if in == nil {
					continue
				}
				if len(se.detachKeys) > 0 {
					typed = append(typed, p...)
					if bytes.Contains(typed, se.detachKeys) {
						close(detached)
						return
					}
					if n := len(se.detachKeys) - 1; len(typed) > n {
						typed = typed[len(typed)-n:]
					}
				}
				if _, err := in.Write(p); err != nil {
					in = nil
				}
			case stream.CloseStdin:
				closeOnce()
				in = nil
			case stream.Resize:
				if rows, cols, err := stream.ParseResize(p); err == nil {
					c.setConsoleSize(rows, cols)
				}
			case stream.Signal:
				if len(p) == 1 {
					c.mu.Lock()
					ctr := c.ctr
					c.mu.Unlock()
					if ctr != nil {
						_ = ctr.Signal(syscall.Signal(p[0]))
					}
				}
			}
		}
	}()
	send := func(ch chunk) bool { return fw.Frame(ch.kind, ch.p) == nil }
	for {
		select {
		case ch := <-se.sub.out:
			if !send(ch) {
				c.attached().unsubscribe(se.sub)
				return
			}
		case <-gone:
			c.attached().unsubscribe(se.sub)
			return
		case <-detached:
			c.attached().unsubscribe(se.sub)
			_ = fw.Exit(stream.ExitStatus{Code: 0, Error: "detached"})
			return
		case <-exited:
			// The output was all handed over before exited closed.
			for {
				select {
				case ch := <-se.sub.out:
					send(ch)
					continue
				default:
				}
				break
			}
			c.attached().unsubscribe(se.sub)
			code := c.record().State.ExitCode
			if se.final != nil {
				se.final()
			}
			_ = fw.Exit(stream.ExitStatus{Code: code})
			return
		}
	}
}

// serveAttach attaches the client to a running container.
func (s *Supervisor) serveAttach(w http.ResponseWriter, r *http.Request) {
	var req AttachRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	c := s.byID(req.Container)
	if c == nil {
		http.Error(w, fmt.Sprintf("no container %s", req.Container), http.StatusNotFound)
		return
	}
	keys, err := ParseDetachKeys(req.DetachKeys)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sub := c.attached().subscribe()
	c.mu.Lock()
	running, exited := c.ctr != nil, c.exited
	c.mu.Unlock()
	if !running {
		c.attached().unsubscribe(sub)
		http.Error(w, fmt.Sprintf("cannot attach to a stopped container: container %s is not running", c.rec.Name), http.StatusConflict)
		return
	}
	conn, br, err := hijack(w)
	if err != nil {
		c.attached().unsubscribe(sub)
		s.logf("attach to %s: %v", c.rec.Name, err)
		return
	}
	defer conn.Close()
	c.setConsoleSize(req.Rows, req.Cols)
	se := &session{c: c, conn: conn, br: br, sub: sub, stdin: req.Stdin, detachKeys: keys}
	se.run(exited)
}

func (s *Supervisor) byID(id string) *container {
	for _, c := range s.list() {
		if c.rec.ID == id {
			return c
		}
	}
	return nil
}

// ParseDetachKeys reads docker's detach key notation: comma-separated
// single characters or ctrl-<key> (ctrl-a ... ctrl-z, ctrl-@, ctrl-[,
// ctrl-\, ctrl-], ctrl-^, ctrl-_).
func ParseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	var out []byte
	for _, k := range bytes.Split([]byte(s), []byte(",")) {
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case len(k) == 6 && bytes.HasPrefix(bytes.ToLower(k), []byte("ctrl-")):
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c >= 'A' && c <= 'Z':
				out = append(out, c-'A'+1)
			case c >= '@' && c <= '_':
				out = append(out, c-'@')
			default:
				return nil, fmt.Errorf("invalid detach keys (%s) provided", s)
			}
		default:
			return nil, fmt.Errorf("invalid detach keys (%s) provided", s)
		}
	}
	return out, nil
}

// runStdinPipe makes the pipe an interactive one-off without a terminal
// reads: its write end stays with the supervisor, so the end of the CLI's
// input is an end-of-file for the process.
func runStdinPipe() (r, w *os.File, err error) {
	return os.Pipe()
}
