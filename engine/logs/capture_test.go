package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recorder is a Writer that keeps entries in memory.
type recorder struct {
	mu      sync.Mutex
	entries []Entry
}

func (r *recorder) WriteEntry(e Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.Line = bytes.Clone(e.Line)
	r.entries = append(r.entries, e)
	return nil
}

type piece struct {
	len     int
	partial bool
}

func TestLineSplitter(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name  string
		input string
		want  []piece
		left  int // bytes held back before the final flush
	}{
		{"short", "ab\n", []piece{{2, false}}, 0},
		{"two and a rest", "ab\ncd\nef", []piece{{2, false}, {2, false}, {2, true}}, 2},
		{"empty lines", "\n\n", []piece{{0, false}, {0, false}}, 0},
		{"exactly max", long(MaxLineSize) + "\n", []piece{{MaxLineSize, false}}, 0},
		{"max plus one", long(MaxLineSize+1) + "\n", []piece{{MaxLineSize, true}, {1, false}}, 0},
		{"two pieces and a rest", long(2*MaxLineSize+5) + "\n", []piece{{MaxLineSize, true}, {MaxLineSize, true}, {5, false}}, 0},
		{"exactly twice max", long(2*MaxLineSize) + "\n", []piece{{MaxLineSize, true}, {MaxLineSize, false}}, 0},
		{"max without newline waits", long(MaxLineSize), []piece{{MaxLineSize, true}}, MaxLineSize},
		{"long without newline", long(MaxLineSize + 10), []piece{{MaxLineSize, true}, {10, true}}, 10},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 7, 4096, 1 << 20} {
			t.Run(fmt.Sprintf("%s/chunk%d", tt.name, chunk), func(t *testing.T) {
				rec := &recorder{}
				s := &lineSplitter{stream: "stdout", w: rec}
				for in := tt.input; len(in) > 0; {
					n := min(chunk, len(in))
					s.add([]byte(in[:n]), false, t0)
					in = in[n:]
				}
				if len(s.buf) != tt.left {
					t.Errorf("held back %d bytes, want %d", len(s.buf), tt.left)
				}
				s.add(nil, true, t0)
				var got []piece
				var joined strings.Builder
				for _, e := range rec.entries {
					got = append(got, piece{len(e.Line), e.Partial})
					joined.Write(e.Line)
					if !e.Partial {
						joined.WriteByte('\n')
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("pieces %v, want %v", got, tt.want)
				}
				if joined.String() != tt.input {
					t.Errorf("pieces do not join back to the input")
				}
			})
		}
	}
}

// fifoWriter writes to a FIFO as a container does, from its own
// descriptor, opened write-only (it blocks until Capture has the read side).
func writeSession(t *testing.T, path string, lines []string) {
	t.Helper()
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Error(err)
		return
	}
	defer w.Close()
	for _, l := range lines {
		if _, err := w.WriteString(l); err != nil {
			t.Error(err)
			return
		}
	}
}

func TestCaptureFIFO(t *testing.T) {
	dir := t.TempDir()
	outPath, errPath, err := MakeFIFOs(filepath.Join(dir, "run"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := MakeFIFOs(filepath.Join(dir, "run")); err != nil {
		t.Fatalf("MakeFIFOs again: %v", err)
	}
	logPath := LogPath(dir, "c")
	lf, err := OpenFile(logPath, Options{MaxSize: 1 << 20, MaxFile: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()

	exited := make(chan struct{})
	ctx := context.Background()
	results := make(chan error, 2)
	go func() { results <- Capture(ctx, outPath, "stdout", lf, exited) }()
	go func() { results <- Capture(ctx, errPath, "stderr", lf, exited) }()

	longLine := strings.Repeat("y", MaxLineSize+100)
	var wg sync.WaitGroup
	for _, p := range []struct{ path, name string }{{outPath, "out"}, {errPath, "err"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The container closes its end and opens it again (a process
			// that re-execs, or a shell redirect): Capture must carry on.
			for session := range 3 {
				var lines []string
				for i := range 50 {
					lines = append(lines, fmt.Sprintf("%s-%d-%02d\n", p.name, session, i))
				}
				if p.name == "out" && session == 1 {
					lines = append(lines, longLine+"\n")
				}
				writeSession(t, p.path, lines)
			}
			writeSession(t, p.path, []string{p.name + "-no-newline"})
		}()
	}
	wg.Wait()
	close(exited)
	for range 2 {
		select {
		case err := <-results:
			if err != nil {
				t.Fatalf("Capture: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Capture did not return after exit")
		}
	}

	// Join the pieces of long lines back, per stream, as a reader would.
	got := map[string][]string{}
	open := map[string]string{}
	var partial int
	err = Read(ctx, logPath, ReadOptions{Tail: -1}, func(e Entry) error {
		if e.Stream != "stdout" && e.Stream != "stderr" {
			t.Errorf("entry with stream %q", e.Stream)
		}
		open[e.Stream] += string(e.Line)
		if e.Partial {
			partial++
			return nil
		}
		got[e.Stream] = append(got[e.Stream], open[e.Stream])
		delete(open, e.Stream)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for stream, rest := range open { // the last bytes, without a newline
		got[stream] = append(got[stream], rest)
	}
	out, errs := got["stdout"], got["stderr"]
	wantLines := func(name string) []string {
		var s []string
		for session := range 3 {
			for i := range 50 {
				s = append(s, fmt.Sprintf("%s-%d-%02d", name, session, i))
			}
			if name == "out" && session == 1 {
				s = append(s, longLine)
			}
		}
		return append(s, name+"-no-newline")
	}
	if partial != 3 { // one piece of the long line, two unterminated ends
		t.Errorf("%d partial entries, want 3", partial)
	}
	if fmt.Sprint(out) != fmt.Sprint(wantLines("out")) {
		t.Errorf("stdout lines:\n%.300q\nwant\n%.300q", out, wantLines("out"))
	}
	if fmt.Sprint(errs) != fmt.Sprint(wantLines("err")) {
		t.Errorf("stderr lines:\n%.300q\nwant\n%.300q", errs, wantLines("err"))
	}

	if err := RemoveFIFOs(filepath.Join(dir, "run")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(outPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("fifo still there: %v", err)
	}
	if err := RemoveFIFOs(filepath.Join(dir, "run")); err != nil {
		t.Errorf("second RemoveFIFOs: %v", err)
	}
}

// TestCaptureSupervisorRestart stops a Capture as a dying supervisor would
// and starts another on the same FIFO: the container never notices, and
// what it wrote meanwhile waits in the pipe for the new one.
func TestCaptureSupervisorRestart(t *testing.T) {
	dir := t.TempDir()
	outPath, _, err := MakeFIFOs(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The container's end, as the engine opens it.
	w, err := OpenFIFOWriter(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rec := &recorder{}
	lines := func() []string {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var s []string
		for _, e := range rec.entries {
			s = append(s, string(e.Line))
		}
		return s
	}
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(lines()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("got %q, want %d lines", lines(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- Capture(ctx, outPath, "stdout", rec, nil) }()
	fmt.Fprintf(w, "a\nb\n")
	waitFor(2)
	cancel()
	select {
	case err := <-first:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Capture after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Capture blocked after cancel")
	}

	// No supervisor: the container still writes without EPIPE or SIGPIPE.
	if _, err := fmt.Fprintf(w, "c\nd\n"); err != nil {
		t.Fatalf("write with no supervisor: %v", err)
	}

	exited := make(chan struct{})
	second := make(chan error, 1)
	go func() { second <- Capture(context.Background(), outPath, "stdout", rec, exited) }()
	fmt.Fprintf(w, "e\n")
	waitFor(5)
	fmt.Fprintf(w, "f\n")
	close(exited)
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Capture did not return after exit")
	}
	if got := fmt.Sprint(lines()); got != "[a b c d e f]" {
		t.Fatalf("lines %s", got)
	}
}

func TestFIFOErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFIFO(regular); err == nil {
		t.Error("OpenFIFO on a regular file succeeded")
	}
	if _, err := OpenFIFOWriter(regular); err == nil {
		t.Error("OpenFIFOWriter on a regular file succeeded")
	}
	if err := os.WriteFile(filepath.Join(dir, StdoutFIFO), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := MakeFIFOs(dir); err == nil {
		t.Error("MakeFIFOs over a regular file succeeded")
	}
	if err := Capture(context.Background(), filepath.Join(dir, "missing"), "stdout", &recorder{}, nil); err == nil {
		t.Error("Capture of a missing fifo succeeded")
	}
}

func TestDrain(t *testing.T) {
	outPath, _, err := MakeFIFOs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenFIFO(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := OpenFIFOWriter(outPath)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("0123456789abcdef\n", 3000) // 51000 bytes: several reads
	if _, err := w.WriteString(want + "tail"); err != nil {
		t.Fatal(err)
	}
	w.Close() // the container is gone; r still holds the pipe open
	// A deadline in the past, as capture sets it, must not stop the drain.
	r.SetReadDeadline(time.Unix(1, 0))
	rec := &recorder{}
	s := &lineSplitter{stream: "stdout", w: rec}
	done := make(chan error, 1)
	go func() { done <- drainFIFO(context.Background(), r, s) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("drain blocked on an empty pipe")
	}
	s.add(nil, true, t0)
	var b strings.Builder
	for _, e := range rec.entries {
		b.Write(e.Line)
		if !e.Partial {
			b.WriteByte('\n')
		}
	}
	if b.String() != want+"tail" {
		t.Fatalf("drained %d bytes, want %d", b.Len(), len(want)+4)
	}
}

func TestCaptureExitedBeforeStart(t *testing.T) {
	outPath, _, err := MakeFIFOs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := OpenFIFOWriter(outPath)
	if err != nil {
		t.Fatal(err)
	}
	// The writer stays open: a FIFO that nobody holds open loses its
	// content, which is why the container's end is opened read-write.
	defer w.Close()
	fmt.Fprintf(w, "one\ntwo\n")
	exited := make(chan struct{})
	close(exited)
	rec := &recorder{}
	if err := Capture(context.Background(), outPath, "stderr", rec, exited); err != nil {
		t.Fatal(err)
	}
	if len(rec.entries) != 2 || string(rec.entries[1].Line) != "two" || rec.entries[0].Stream != "stderr" {
		t.Fatalf("entries %+v", rec.entries)
	}
}

// endless yields n bytes of 'A' without a newline, then ends as a pty
// master does when its last slave closes.
type endless struct{ n int }

func (r *endless) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, unix.EIO
	}
	k := min(len(p), r.n)
	for i := range p[:k] {
		p[i] = 'A'
	}
	r.n -= k
	return k, nil
}

func TestCaptureTerminal(t *testing.T) {
	tests := []struct {
		name  string
		input io.Reader
		want  []piece
		lines []string
	}{
		{"crlf lines", strings.NewReader("a\r\nb\r\n\r\nc"), []piece{{1, false}, {1, false}, {0, false}, {1, true}}, []string{"a", "b", "", "c"}},
		{"no newline at all", &endless{3*MaxLineSize + 7}, []piece{{MaxLineSize, true}, {MaxLineSize, true}, {MaxLineSize, true}, {7, true}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			if err := CaptureTerminal(tt.input, rec); err != nil {
				t.Fatal(err)
			}
			var got []piece
			for i, e := range rec.entries {
				got = append(got, piece{len(e.Line), e.Partial})
				if e.Stream != "stdout" {
					t.Errorf("stream %q", e.Stream)
				}
				if tt.lines != nil && string(e.Line) != tt.lines[i] {
					t.Errorf("entry %d: %q, want %q", i, e.Line, tt.lines[i])
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("pieces %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCaptureTerminalKeepsTheCap: a terminal that never writes a newline
// still fills the log in bounded entries, so rotation keeps the files
// within MaxSize each.
func TestCaptureTerminalKeepsTheCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	opts := Options{MaxSize: 200 * 1000, MaxFile: 2}
	f, err := OpenFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := CaptureTerminal(&endless{5 << 20}, f); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(path + "*")
	if len(matches) != 2 {
		t.Errorf("files %v, want 2", matches)
	}
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > opts.MaxSize {
			t.Errorf("%s: %d bytes, over the cap of %d", m, fi.Size(), opts.MaxSize)
		}
	}
}
