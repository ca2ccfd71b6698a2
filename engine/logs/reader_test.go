package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestReadSelect(t *testing.T) {
	path := LogPath(t.TempDir(), "c")
	// About 80 bytes an entry: 40 entries spread over 3 files and a half.
	f, err := OpenFile(path, Options{MaxSize: 1000, MaxFile: 10})
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, "l", 0, 40, t0)
	f.Close()
	if rotated, _ := rotatedFiles(path); len(rotated) < 2 {
		t.Fatalf("want the log over several files, got rotated %v", rotated)
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	tests := []struct {
		name string
		opts ReadOptions
		want []string
	}{
		{"all", ReadOptions{Tail: -1}, names("l", 0, 40)},
		{"tail 0", ReadOptions{Tail: 0}, nil},
		{"tail 1", ReadOptions{Tail: 1}, names("l", 39, 40)},
		{"tail 25 spans files", ReadOptions{Tail: 25}, names("l", 15, 40)},
		{"tail more than all", ReadOptions{Tail: 100}, names("l", 0, 40)},
		{"since inclusive", ReadOptions{Tail: -1, Since: at(30)}, names("l", 30, 40)},
		{"until inclusive", ReadOptions{Tail: -1, Until: at(4)}, names("l", 0, 5)},
		{"since and until", ReadOptions{Tail: -1, Since: at(10), Until: at(12)}, names("l", 10, 13)},
		{"tail then since", ReadOptions{Tail: 5, Since: at(37)}, names("l", 37, 40)},
		{"since after all", ReadOptions{Tail: -1, Since: at(100)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readAllLines(t, path, tt.opts)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestReadEdgeCases(t *testing.T) {
	dir := t.TempDir()
	if got := readAllLines(t, LogPath(dir, "missing"), ReadOptions{Tail: -1}); len(got) != 0 {
		t.Fatalf("missing log read %q", got)
	}
	if got := readAllLines(t, LogPath(dir+"/nodir", "missing"), ReadOptions{Tail: 3}); len(got) != 0 {
		t.Fatalf("missing dir read %q", got)
	}

	path := LogPath(dir, "c")
	content := `{"log":"a\n","stream":"stdout","time":"2026-01-02T01:04:05Z"}
not json
{"log":"part","stream":"stderr","time":"2026-01-02T01:04:06Z"}

{"log":"b\n","stream":"stdout","time":"2026-01-02T01:04:07Z"}
{"log":"unfinished`
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	var got []Entry
	err := Read(context.Background(), path, ReadOptions{Tail: -1}, func(e Entry) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[0].Line) != "a" || got[0].Partial ||
		string(got[1].Line) != "part" || !got[1].Partial || got[1].Stream != "stderr" ||
		string(got[2].Line) != "b" || !got[2].Time.Equal(time.Date(2026, 1, 2, 1, 4, 7, 0, time.UTC)) {
		t.Fatalf("got %+v", got)
	}
	if got := readAllLines(t, path, ReadOptions{Tail: 2}); fmt.Sprint(got) != "[part b]" {
		t.Fatalf("tail 2 = %q", got)
	}

	stop := errors.New("stop")
	n := 0
	err = Read(context.Background(), path, ReadOptions{Tail: -1}, func(Entry) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("callback error: got %v after %d calls", err, n)
	}
}

// follower runs a following Read in the background.
type follower struct {
	lines  chan string
	done   chan struct{} // closes ReadOptions.Done
	result chan error
	cancel context.CancelFunc
}

func startFollow(t *testing.T, path string, tail int) *follower {
	ctx, cancel := context.WithCancel(context.Background())
	fl := &follower{lines: make(chan string, 10000), done: make(chan struct{}), result: make(chan error, 1), cancel: cancel}
	t.Cleanup(cancel)
	go func() {
		fl.result <- Read(ctx, path, ReadOptions{Tail: tail, Follow: true, Done: fl.done}, func(e Entry) error {
			fl.lines <- string(e.Line)
			return nil
		})
	}()
	return fl
}

// expect waits for want, in order, and nothing else.
func (fl *follower) expect(t *testing.T, want []string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for i, w := range want {
		select {
		case got := <-fl.lines:
			if got != w {
				t.Fatalf("line %d: got %q, want %q", i, got, w)
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %q (line %d of %d)", w, i, len(want))
		}
	}
}

func (fl *follower) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-fl.result:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return")
		return nil
	}
}

func TestFollow(t *testing.T) {
	tests := []struct {
		name    string
		maxFile int
		tail    int
		before  int // entries written before Read starts
	}{
		{name: "rotate keep 10", maxFile: 10, tail: -1, before: 5},
		{name: "rotate keep 3 tail 2", maxFile: 3, tail: 2, before: 5},
		{name: "log appears later", maxFile: 10, tail: -1, before: 0},
		{name: "tail 0 only new", maxFile: 10, tail: 0, before: 5},
		{name: "truncating single file", maxFile: 1, tail: -1, before: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := LogPath(t.TempDir(), "c")
			var f *File
			open := func() {
				var err error
				if f, err = OpenFile(path, Options{MaxSize: 1000, MaxFile: tt.maxFile}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.before > 0 {
				open()
				writeLines(t, f, "l", 0, tt.before, t0)
			}
			fl := startFollow(t, path, tt.tail)
			first := 0
			if tt.tail >= 0 {
				first = max(0, tt.before-tt.tail)
			}
			fl.expect(t, names("l", first, tt.before))
			time.Sleep(2 * followInterval) // let the reader reach its follow loop
			if f == nil {
				open()
			}
			// Bursts small enough that a rotation never drops a file the
			// reader has not reached, with a sleep so that it sees some
			// rotations while idle and some in the middle of a burst.
			n := tt.before
			burst := 8 // about 650 bytes: a rotation every other burst
			if tt.maxFile == 1 {
				burst = 4 // a single file must not be replaced twice between polls
			}
			for range 6 {
				writeLines(t, f, "l", n, burst, t0)
				fl.expect(t, names("l", n, n+burst))
				n += burst
			}
			// The container exits: the last lines still come, then Read ends.
			writeLines(t, f, "l", n, 3, t0)
			f.Close()
			close(fl.done)
			fl.expect(t, names("l", n, n+3))
			if err := fl.wait(t); err != nil {
				t.Fatalf("Read after Done: %v", err)
			}
			select {
			case extra := <-fl.lines:
				t.Fatalf("unexpected line %q", extra)
			default:
			}
		})
	}
}

func TestFollowFastRotations(t *testing.T) {
	// Several rotations between two polls: the reader finds the files that
	// replaced the one it was reading among the rotated ones.
	path := LogPath(t.TempDir(), "c")
	f, err := OpenFile(path, Options{MaxSize: 500, MaxFile: 20})
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, "l", 0, 3, t0)
	fl := startFollow(t, path, -1)
	fl.expect(t, names("l", 0, 3))
	writeLines(t, f, "l", 3, 60, t0) // about 10 rotations at once
	fl.expect(t, names("l", 3, 63))
	fl.cancel()
	if err := fl.wait(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v, want context.Canceled", err)
	}
	f.Close()
}

func TestFollowUntil(t *testing.T) {
	path := LogPath(t.TempDir(), "c")
	f, err := OpenFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	now := time.Now()
	writeLines(t, f, "l", 0, 2, now.Add(-10*time.Second))
	until := now.Add(300 * time.Millisecond)
	var got []string
	start := time.Now()
	err = Read(context.Background(), path, ReadOptions{Tail: -1, Follow: true, Until: until}, func(e Entry) error {
		got = append(got, string(e.Line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[l-0000 l-0001]" {
		t.Fatalf("got %q", got)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("follow with until returned after %v", d)
	}
}

// TestReadBounded: lines longer than maxEntrySize (an old log, a file
// written by hand) are skipped, both reading forward and from the end, and
// entries longer than the read blocks (escaping makes them so) come back
// whole either way.
func TestReadBounded(t *testing.T) {
	path := LogPath(t.TempDir(), "c")
	f, err := OpenFile(path, Options{MaxSize: 100 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctl := bytes.Repeat([]byte{1}, MaxLineSize) // 6 bytes each in JSON: an entry of 96 KiB
	write := func(line []byte, partial bool) {
		if err := f.WriteEntry(Entry{Time: t0, Stream: "stdout", Line: line, Partial: partial}); err != nil {
			t.Fatal(err)
		}
	}
	write([]byte("first"), false)
	write(ctl, true)
	write([]byte("end of ctl"), false)
	f.Close()
	huge := `{"log":"` + strings.Repeat("B", 3*maxEntrySize) + `","stream":"stdout","time":"2026-11-22T07:00:00Z"}` + "\n"
	lf, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lf.WriteString(huge + `{"log":"last\n","stream":"stdout","time":"2026-11-22T07:00:00Z"}` + "\n" + huge[:2*maxEntrySize]); err != nil {
		t.Fatal(err)
	}
	lf.Close()

	want := []string{"first", string(ctl), "end of ctl", "last"}
	for _, tail := range []int{-1, 4, 100} {
		if got := readAllLines(t, path, ReadOptions{Tail: tail}); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("tail %d: %d entries %.40q, want %d", tail, len(got), got, len(want))
		}
	}
	if got := readAllLines(t, path, ReadOptions{Tail: 2}); fmt.Sprint(got) != fmt.Sprint(want[2:]) {
		t.Errorf("tail 2: %.40q", got)
	}
}
