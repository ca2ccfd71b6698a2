package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/internal/errdefs"
	"github.com/berthrun/berth/supervisor/stream"
)

// ExecRequest runs a command in a running container, as `berth exec`.
// The supervisor runs it and relays its stdio over the connection (package
// stream): no descriptor of the CLI ever reaches the container.
type ExecRequest struct {
	Container string   `json:"container"` // the container's ID
	Args      []string `json:"args"`
	Env       []string `json:"env,omitempty"`
	Workdir   string   `json:"workdir,omitempty"`
	User      string   `json:"user,omitempty"`
	Tty       bool     `json:"tty,omitempty"`
	// Stdin relays the CLI's input; without it the process reads /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// Detach starts the command and answers at once (`exec -d`): the
	// command outlives the connection, its stdio the container's /dev/null.
	Detach bool `json:"detach,omitempty"`
	// Rows and Cols are the terminal's size at the start (Tty).
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// ExecIO is the CLI's end of an exec's stdio.
type ExecIO struct {
	Stdin  io.Reader // nil sends no input
	Stdout io.Writer // nil discards
	Stderr io.Writer // nil discards
	// Resize brings the terminal's new sizes.
	Resize <-chan runtime.WinSize
	// Signals are sent to the process (run and attach; exec ignores them).
	Signals <-chan syscall.Signal
}

// ExecError is an exec that could not run its command (not found, not
// executable), as the engine put it, with the exit code docker gives it.
type ExecError struct {
	Msg  string
	Code int
}

func (e *ExecError) Error() string { return e.Msg }

// execFailure is the last frame of an exec that could not run its command,
// with docker's exit code for it: the runtime's for a command missing or not
// executable, 126 for anything else.
func execFailure(err error) stream.ExitStatus {
	code := runtime.StartExitCode(err)
	if code == 0 {
		code = 126
	}
	return stream.ExitStatus{Code: code, Error: err.Error()}
}

// upgradeProto names the protocol an exec's connection turns into.
const upgradeProto = "berth-stdio"

// serveExec runs an ExecRequest: once the request is checked the
// connection is taken over (101 Switching Protocols) and carries frames.
// The process is killed if the CLI goes away, or the supervisor stops.
func (s *Supervisor) serveExec(w http.ResponseWriter, r *http.Request) {
	var req ExecRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, err.Error(), statusOf(errdefs.ErrInvalidArgument))
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20)) // the frames start after the body
	var c *container
	for _, ct := range s.list() {
		if ct.rec.ID == req.Container {
			c = ct
		}
	}
	if c == nil {
		http.Error(w, fmt.Sprintf("no container %s", req.Container), statusOf(errdefs.ErrNotFound))
		return
	}
	c.mu.Lock()
	ctr, rootfs, name := c.ctr, c.rec.Spec.Rootfs, c.rec.Name
	c.mu.Unlock()
	if ctr == nil {
		http.Error(w, fmt.Sprintf("container %s is not running", name), statusOf(errdefs.ErrFailedPrecondition))
		return
	}
	spec := runtime.ExecSpec{Args: req.Args, Env: req.Env, Cwd: req.Workdir, Tty: req.Tty}
	if req.User != "" {
		u, err := runtime.ResolveUser(rootfs, req.User, nil)
		if err != nil {
			http.Error(w, fmt.Sprintf("user %q: %v", req.User, err), statusOf(errdefs.ErrInvalidArgument))
			return
		}
		spec.User = &u
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "exec needs a connection of its own", http.StatusInternalServerError)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		s.logf("exec in %s: %v", name, err)
		return
	}
	defer conn.Close()
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + upgradeProto + "\r\n\r\n")
	if err := brw.Flush(); err != nil {
		return
	}

	fw := stream.NewWriter(conn)
	if req.Detach {
		// Started, not waited for: neither the CLI's going away nor the
		// supervisor's stopping ends it; the container's end does.
		spec.Detach = true
		code, err := ctr.Exec(context.Background(), spec)
		st := stream.ExitStatus{Code: code}
		if err != nil {
			st = execFailure(err)
		}
		_ = fw.Exit(st)
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	spec.Stdout = fw.Stream(stream.Stdout)
	if !req.Tty {
		spec.Stderr = fw.Stream(stream.Stderr)
	}
	spec.Size = runtime.WinSize{Rows: req.Rows, Cols: req.Cols}
	resize := make(chan runtime.WinSize, 1)
	spec.Resize = resize
	var stdin *io.PipeWriter
	if req.Stdin {
		var pr *io.PipeReader
		pr, stdin = io.Pipe()
		defer pr.Close() // unblocks a frame still being handed over
		spec.Stdin = pr
	}
	go relayClient(brw.Reader, stdin, resize, cancel)
	code, err := ctr.Exec(ctx, spec)
	st := stream.ExitStatus{Code: code}
	if err != nil && code < 0 {
		st = execFailure(err)
	}
	_ = fw.Exit(st)
}

// relayClient reads the CLI's frames: input into stdin, sizes into resize.
// The connection's end (the CLI went away) cancels the exec.
func relayClient(r *bufio.Reader, stdin *io.PipeWriter, resize chan runtime.WinSize, cancel func()) {
	fr := stream.NewReader(r)
	for {
		k, p, err := fr.Next()
		if err != nil {
			cancel()
			if stdin != nil {
				stdin.CloseWithError(io.ErrUnexpectedEOF)
			}
			return
		}
		switch k {
		case stream.Stdin:
			if stdin != nil {
				_, _ = stdin.Write(p) // blocks until the process takes it: bounded
			}
		case stream.CloseStdin:
			if stdin != nil {
				stdin.Close()
			}
		case stream.Resize:
			rows, cols, err := stream.ParseResize(p)
			if err != nil {
				continue
			}
			// Only the newest size matters.
			select {
			case <-resize:
			default:
			}
			resize <- runtime.WinSize{Rows: rows, Cols: cols}
		}
	}
}

// Exec runs req in its container and relays its stdio; it returns the
// command's exit code, or an *ExecError when the command could not run.
// Cancelling ctx kills the command.
func (c *Client) Exec(ctx context.Context, req ExecRequest, sio ExecIO) (int, error) {
	return c.relay(ctx, "/exec", req, sio)
}

// relay sends req to path, whose answer takes the connection over, and
// relays sio over it until the exit frame.
func (c *Client) relay(ctx context.Context, path string, req any, sio ExecIO) (int, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return -1, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.paths.Socket(c.project))
	if err != nil {
		// A supervisor whose project was empty may have exited since it
		// was reached (before a run): reach one again, once.
		if _, cerr := Connect(ctx, c.paths, c.project); cerr != nil {
			return -1, c.connErr(err)
		}
		if conn, err = d.DialContext(ctx, "unix", c.paths.Socket(c.project)); err != nil {
			return -1, c.connErr(err)
		}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	hreq, err := http.NewRequest("POST", "http://berth"+path, bytes.NewReader(body))
	if err != nil {
		return -1, err
	}
	hreq.Header.Set("Connection", "Upgrade")
	hreq.Header.Set("Upgrade", upgradeProto)
	if err := hreq.Write(conn); err != nil {
		return -1, c.connErr(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, hreq)
	if err != nil {
		return -1, c.connErr(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		return -1, errorOfStatus(resp)
	}

	fw := stream.NewWriter(conn)
	if sio.Stdin != nil {
		go func() {
			_, err := io.CopyBuffer(fw.Stream(stream.Stdin), sio.Stdin, make([]byte, stream.MaxPayload))
			if err == nil {
				_ = fw.Frame(stream.CloseStdin, nil)
			}
		}()
	}
	if sio.Resize != nil || sio.Signals != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case ws := <-sio.Resize:
					_ = fw.Frame(stream.Resize, stream.ResizePayload(ws.Rows, ws.Cols))
				case sig := <-sio.Signals:
					_ = fw.Frame(stream.Signal, []byte{byte(sig)})
				case <-done:
					return
				}
			}
		}()
	}
	out := func(w io.Writer, p []byte) io.Writer {
		if w != nil {
			if _, err := w.Write(p); err != nil {
				return nil // keep reading: the command must not block on us
			}
		}
		return w
	}
	stdout, stderr := sio.Stdout, sio.Stderr
	fr := stream.NewReader(br)
	for {
		k, p, err := fr.Next()
		if err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			return -1, fmt.Errorf("%s: the supervisor of project %q closed the connection: %w", path[1:], c.project, err)
		}
		switch k {
		case stream.Stdout:
			stdout = out(stdout, p)
		case stream.Stderr:
			stderr = out(stderr, p)
		case stream.Exit:
			st, err := stream.ParseExit(p)
			if err != nil {
				return -1, err
			}
			if st.Error != "" {
				return -1, &ExecError{Msg: st.Error, Code: st.Code}
			}
			return st.Code, nil
		}
	}
}
