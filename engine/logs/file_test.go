package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)

// writeLines writes entries named prefix-0000... at one-second steps from
// start.
func writeLines(t *testing.T, f *File, prefix string, from, n int, start time.Time) {
	t.Helper()
	for i := from; i < from+n; i++ {
		e := Entry{Time: start.Add(time.Duration(i) * time.Second), Stream: "stdout", Line: fmt.Appendf(nil, "%s-%04d", prefix, i)}
		if err := f.WriteEntry(e); err != nil {
			t.Fatal(err)
		}
	}
}

func readAllLines(t *testing.T, path string, opts ReadOptions) []string {
	t.Helper()
	var got []string
	err := Read(context.Background(), path, opts, func(e Entry) error {
		got = append(got, string(e.Line))
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got
}

func names(prefix string, from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, fmt.Sprintf("%s-%04d", prefix, i))
	}
	return s
}

func TestFileFormat(t *testing.T) {
	path := LogPath(t.TempDir(), "abc")
	f, err := OpenFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 7200))
	for _, e := range []Entry{
		{Time: ts, Stream: "stdout", Line: []byte("hello <b> & \"q\"")},
		{Time: ts, Stream: "stderr", Line: []byte("piece"), Partial: true},
		{Time: ts, Stream: "stderr", Line: []byte("bad \xff utf8\ttab")},
	} {
		if err := f.WriteEntry(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"log":"hello <b> & \"q\"\n","stream":"stdout","time":"2026-01-02T01:04:05.000000006Z"}
{"log":"piece","stream":"stderr","time":"2026-01-02T01:04:05.000000006Z"}
{"log":"bad \ufffd utf8\ttab\n","stream":"stderr","time":"2026-01-02T01:04:05.000000006Z"}
`
	if string(data) != want {
		t.Fatalf("file content:\n%s\nwant:\n%s", data, want)
	}
	if filepath.Base(path) != "abc-json.log" {
		t.Errorf("LogPath base = %q", filepath.Base(path))
	}
}

func TestFileRepairsTornLine(t *testing.T) {
	path := LogPath(t.TempDir(), "c")
	torn := `{"log":"one\n","stream":"stdout","time":"2026-01-02T01:04:05Z"}` + "\n" + `{"log":"tw`
	if err := os.WriteFile(path, []byte(torn), 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, "after", 0, 1, t0)
	f.Close()
	got := readAllLines(t, path, ReadOptions{Tail: -1})
	if want := []string{"one", "after-0000"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRotation(t *testing.T) {
	tests := []struct {
		maxSize int64
		maxFile int
		lines   int
	}{
		{maxSize: 1000, maxFile: 1, lines: 100},
		{maxSize: 1000, maxFile: 2, lines: 100},
		{maxSize: 1000, maxFile: 3, lines: 100},
		{maxSize: 500, maxFile: 5, lines: 300},
		{maxSize: 1 << 20, maxFile: 3, lines: 100}, // no rotation at all
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("size%d_files%d", tt.maxSize, tt.maxFile), func(t *testing.T) {
			dir := t.TempDir()
			path := LogPath(dir, "c")
			f, err := OpenFile(path, Options{MaxSize: tt.maxSize, MaxFile: tt.maxFile})
			if err != nil {
				t.Fatal(err)
			}
			writeLines(t, f, "line", 0, tt.lines, t0)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) > tt.maxFile {
				t.Errorf("%d files, want at most %d", len(ents), tt.maxFile)
			}
			for _, e := range ents {
				if !strings.HasPrefix(e.Name(), "c-json.log") {
					t.Errorf("unexpected file %s", e.Name())
				}
				if fi, _ := e.Info(); fi.Size() > tt.maxSize {
					t.Errorf("%s is %d bytes, above %d", e.Name(), fi.Size(), tt.maxSize)
				}
			}
			got := readAllLines(t, path, ReadOptions{Tail: -1})
			if len(got) == 0 {
				t.Fatal("no lines read back")
			}
			// What is left is the newest lines, in order, with no gap.
			first := tt.lines - len(got)
			if want := names("line", first, tt.lines); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("read back %q, want %q", got, want)
			}
			if tt.maxFile > 1 && tt.maxSize < 1<<20 && len(ents) != tt.maxFile {
				t.Errorf("%d files, want %d after many rotations", len(ents), tt.maxFile)
			}

			if err := RemoveFile(path); err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("RemoveFile left %v", ents)
			}
			if err := RemoveFile(path); err != nil {
				t.Errorf("second RemoveFile: %v", err)
			}
		})
	}
}

func TestWriteAfterClose(t *testing.T) {
	f, err := OpenFile(LogPath(t.TempDir(), "c"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := f.WriteEntry(Entry{Line: []byte("x")}); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

func TestRotationDropsFilesBeyondMaxFile(t *testing.T) {
	// A container whose max-file was lowered: the extra old files go at
	// the next rotation.
	dir := t.TempDir()
	path := LogPath(dir, "c")
	for _, suffix := range []string{"", ".1", ".2", ".3", ".4", ".5", ".x", ".01"} {
		if err := os.WriteFile(path+suffix, []byte(`{"log":"old\n","stream":"stdout","time":"2026-01-02T01:04:05Z"}`+"\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	f, err := OpenFile(path, Options{MaxSize: 100, MaxFile: 3})
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, "new", 0, 1, t0)
	f.Close()
	var got []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		got = append(got, e.Name())
	}
	// .x and .01 are not ours and stay.
	want := "[c-json.log c-json.log.01 c-json.log.1 c-json.log.2 c-json.log.x]"
	if fmt.Sprint(got) != want {
		t.Fatalf("files %v, want %s", got, want)
	}
	if lines := readAllLines(t, path, ReadOptions{Tail: -1}); fmt.Sprint(lines) != "[old old new-0000]" {
		t.Fatalf("lines %q", lines)
	}
}

func TestFileConcurrentWriters(t *testing.T) {
	// stdout and stderr goroutines share one File, through rotations.
	path := LogPath(t.TempDir(), "c")
	f, err := OpenFile(path, Options{MaxSize: 2000, MaxFile: 1000})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := Entry{Time: t0, Stream: fmt.Sprint(w), Line: fmt.Appendf(nil, "%d", i)}
				if err := f.WriteEntry(e); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	f.Close()
	next := make([]int, writers)
	err = Read(context.Background(), path, ReadOptions{Tail: -1}, func(e Entry) error {
		w, _ := strconv.Atoi(e.Stream)
		if string(e.Line) != strconv.Itoa(next[w]) {
			return fmt.Errorf("writer %d: got %s, want %d", w, e.Line, next[w])
		}
		next[w]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for w, n := range next {
		if n != each {
			t.Errorf("writer %d: %d entries read, want %d", w, n, each)
		}
	}
}
