package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berthrun/berth/internal/errdefs"
	"github.com/berthrun/berth/internal/fault"
)

// Client talks to a project's supervisor.
type Client struct {
	paths   Paths
	project string
	http    *http.Client
}

// Connect reaches the project's supervisor, starting one (the berth binary
// re-executed as `berth __supervise`, in its own session) when none runs.
//
// Two CLIs may spawn one each at once: the one that loses the project's lock
// exits at once, and its CLI reaches the winner as soon as it listens (or
// spawns again if the holder was a supervisor on its way out).
func Connect(ctx context.Context, paths Paths, proj string) (*Client, error) {
	if err := paths.CheckProject(proj); err != nil {
		return nil, err
	}
	c := newClient(paths, proj)
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		if c.alive(ctx) {
			return c, nil
		}
		if attempt == 3 || time.Now().After(deadline) {
			return nil, fmt.Errorf("the supervisor of project %q did not start: %s", proj, lastLines(paths.Log(proj), 5))
		}
		ready, err := spawn(paths, proj)
		if err != nil {
			return nil, err
		}
		ok, err := waitReady(ctx, ready)
		if err != nil {
			return nil, err
		}
		if ok {
			return c, nil
		}
		// It exited: another supervisor holds the lock. It listens once it
		// has adopted the project's containers.
		for time.Now().Before(deadline) && lockHeld(paths.Lock(proj)) {
			if c.alive(ctx) {
				return c, nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// waitReady waits for a spawned supervisor's readiness byte: true when it
// listens, false when it exited without listening.
func waitReady(ctx context.Context, ready *os.File) (bool, error) {
	readyc := make(chan bool, 1)
	go func() {
		defer ready.Close()
		b := make([]byte, 1)
		n, _ := ready.Read(b)
		readyc <- n == 1
	}()
	deadline := time.NewTimer(spawnWait)
	defer deadline.Stop()
	select {
	case ok := <-readyc:
		return ok, nil
	case <-deadline.C:
	case <-ctx.Done():
	}
	// No longer waiting for this one: if it listens later (once the
	// supervisor that holds the project exits), it finds the pipe closed
	// and does not wait for a request from us.
	ready.Close()
	return false, ctx.Err()
}

// Running returns a client when the project's supervisor is up, else nil.
func Running(ctx context.Context, paths Paths, proj string) *Client {
	if paths.CheckProject(proj) != nil {
		return nil
	}
	c := newClient(paths, proj)
	if c.reach(ctx) {
		return c
	}
	return nil
}

// busyWait bounds the wait for a supervisor that holds the project's lock
// but takes no connection yet (starting, adopting).
const busyWait = 15 * time.Second

// reach reports whether the project's supervisor can be reached, waiting up
// to busyWait for one that holds the project's lock but does not listen yet.
func (c *Client) reach(ctx context.Context) bool {
	deadline := time.Now().Add(busyWait)
	for {
		if c.alive(ctx) {
			return true
		}
		if !lockHeld(c.paths.Lock(c.project)) || time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func newClient(paths Paths, proj string) *Client {
	sock := paths.Socket(proj)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}
	return &Client{paths: paths, project: proj, http: &http.Client{Transport: tr}}
}

// alive reports whether a supervisor listens on the project's socket. A
// connection made is enough: the kernel queues it even while the
// supervisor is too busy to answer, and a request with a timeout took a
// busy supervisor for a dead one.
func (c *Client) alive(ctx context.Context) bool {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "unix", c.paths.Socket(c.project))
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// spawnWait is how long a CLI waits for the supervisor it spawned to
// listen, and how long that supervisor waits for the CLI's first request.
const spawnWait = 15 * time.Second

// spawn starts a detached supervisor for the project. It returns the read
// side of a pipe on which the supervisor writes one byte once it listens.
func spawn(paths Paths, proj string) (*os.File, error) {
	if len(paths.Socket(proj)) > 107 {
		return nil, fmt.Errorf("run root %s is too deep: the socket path %s is longer than a unix socket allows", paths.RunRoot, paths.Socket(proj))
	}
	exe, err := engineBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(paths.ProjectRunDir(proj), 0o700); err != nil {
		return nil, err
	}
	// The supervisor's stderr goes to its log too (what it prints when it
	// cannot run): keep that under the log's cap as well.
	if fi, err := os.Stat(paths.Log(proj)); err == nil && fi.Size() >= logMaxSize {
		_ = os.Rename(paths.Log(proj), paths.Log(proj)+".1")
	}
	logf, err := os.OpenFile(paths.Log(proj), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	cmd := exec.Command(exe, "--root", paths.Root, "--run-root", paths.RunRoot, "__supervise", proj)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w} // fd 3
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		return nil, fmt.Errorf("starting the supervisor: %w", err)
	}
	// The fault hook arms the first supervisor only: one spawned again to
	// retry the request must get through.
	os.Unsetenv(fault.Env)
	// The supervisor outlives us; its parent becomes init (or our subreaper).
	return r, cmd.Process.Release()
}

// engineBinary is what runs the supervisor: berth-engine beside this
// binary (no CLI, no compose loader: faster container starts, less memory),
// else this binary itself.
func engineBinary() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	engine := filepath.Join(filepath.Dir(self), "berth-engine")
	if fi, err := os.Stat(engine); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return engine, nil
	}
	return self, nil
}

// readyFDEnv names the descriptor a spawned supervisor signals readiness on.
const readyFDEnv = "BERTH_READY_FD"

// signalReady tells the process that spawned this supervisor that it
// listens, and closes the descriptor so no container inherits it.
//
// It reports whether the CLI that spawned this supervisor still waits for
// it: a CLI that stopped waiting (it reached another supervisor, or died)
// has closed its end, and will send no request.
func signalReady() bool {
	fd, err := strconv.Atoi(os.Getenv(readyFDEnv))
	os.Unsetenv(readyFDEnv)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "ready")
	defer f.Close()
	_, err = f.Write([]byte{1})
	return err == nil
}

// Ps returns the records of the project's containers with their live state.
func (c *Client) Ps(ctx context.Context) ([]Record, error) {
	resp, err := c.do(ctx, "GET", "/ps", nil)
	if err != nil {
		return nil, c.connErr(err)
	}
	defer resp.Body.Close()
	var recs []Record
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
		return nil, err
	}
	return recs, nil
}

// Up converges the project; progress receives each event as it happens.
func (c *Client) Up(ctx context.Context, req UpRequest, progress func(Event)) error {
	return c.stream(ctx, "/up", req, progress)
}

// Down stops and removes the project's containers.
func (c *Client) Down(ctx context.Context, req DownRequest, progress func(Event)) error {
	return c.stream(ctx, "/down", req, progress)
}

// Containers runs op (start, stop, restart, kill, rm, pause, unpause).
func (c *Client) Containers(ctx context.Context, op string, req ContainersRequest, progress func(Event)) error {
	return c.stream(ctx, "/"+op, req, progress)
}

// Events streams the supervisor's events until ctx ends.
func (c *Client) Events(ctx context.Context, fn func(Event)) error {
	return c.EventsFrom(ctx, nil, fn)
}

// EventsFrom is Events with ready, when not nil, called once the
// supervisor has subscribed the stream: no event after that call is missed,
// so a caller may read the state then and follow its changes.
func (c *Client) EventsFrom(ctx context.Context, ready func(), fn func(Event)) error {
	return c.EventsRange(ctx, EventsOptions{}, ready, fn)
}

// EventsOptions choose the events EventsRange streams.
type EventsOptions struct {
	// Replay asks for the project's past events stamped Since or later
	// first, from the journal; the live ones follow.
	Replay bool
	Since  time.Time
	// Until, when set, ends the stream at that time (at once when it has
	// passed, after the replay).
	Until time.Time
}

// EventsRange is EventsFrom with past events and an end.
func (c *Client) EventsRange(ctx context.Context, o EventsOptions, ready func(), fn func(Event)) error {
	q := url.Values{}
	if o.Replay {
		q.Set("since", o.Since.UTC().Format(time.RFC3339Nano))
	}
	if !o.Until.IsZero() {
		q.Set("until", o.Until.UTC().Format(time.RFC3339Nano))
	}
	u := "http://berth/events"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return c.connErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errorOfStatus(resp)
	}
	if ready != nil {
		ready()
	}
	err = readMessages(resp.Body, fn)
	if errors.Is(err, errClosed) {
		return nil // the supervisor went away with its project
	}
	return err
}

func (c *Client) stream(ctx context.Context, path string, body any, progress func(Event)) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, "POST", path, b)
	if err != nil {
		return c.connErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errorOfStatus(resp)
	}
	if progress == nil {
		progress = func(Event) {}
	}
	return readMessages(resp.Body, progress)
}

// do sends a request. A supervisor that found its project empty may exit
// between the moment it was reached and this request, which then gets no
// answer at all: the request is sent again, to a new supervisor if need
// be. That is safe because every operation converges (a repeated up or down
// changes nothing more), and a supervisor on its way out has started none.
func (c *Client) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, "http://berth"+path, r)
		resp, err := c.http.Do(req)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return nil, err
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
		if _, err := Connect(ctx, c.paths, c.project); err != nil {
			return nil, err
		}
	}
	return nil, lastErr
}

// readMessages reads JSON lines until the final one and returns its error.
func readMessages(r io.Reader, fn func(Event)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("reading the supervisor's answer: %w", err)
		}
		if m.Event != nil {
			fn(*m.Event)
		}
		if m.Done {
			if m.Error != "" {
				return errdefs.New(m.Kind, m.Error)
			}
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errClosed
}

var errClosed = errdefs.Derive(errdefs.ErrUnavailable, "the supervisor closed the connection before answering")

// errorOfStatus rebuilds an error the supervisor answered before any
// stream, its kind from the status (statusOf).
func errorOfStatus(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(b))
	var kind error
	switch resp.StatusCode {
	case http.StatusBadRequest:
		kind = errdefs.ErrInvalidArgument
	case http.StatusNotFound:
		kind = errdefs.ErrNotFound
	case http.StatusConflict:
		kind = errdefs.ErrFailedPrecondition
	default:
		return errors.New(msg)
	}
	return errdefs.Errorf(kind, "%s", msg)
}

func (c *Client) connErr(err error) error {
	return fmt.Errorf("reaching the supervisor of project %q: %w: %w", c.project, errdefs.ErrUnavailable, err)
}

// lastLines returns the last n lines of a file, joined by "; ".
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}
