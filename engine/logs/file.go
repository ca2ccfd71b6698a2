package logs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Entry is one log record: a line of output, or a piece of one.
type Entry struct {
	Time   time.Time
	Stream string // "stdout" or "stderr"
	// Line is the text without its trailing newline.
	Line []byte
	// Partial is set when Line did not end with a newline: a piece of a
	// line longer than MaxLineSize (more pieces follow), or the last bytes
	// a stream held when it stopped.
	Partial bool
}

// Writer receives the entries that Capture reads. *File is one.
type Writer interface {
	WriteEntry(Entry) error
}

// jsonEntry is an entry as Docker's json-file driver stores it: the newline
// is part of "log" unless the entry is partial.
type jsonEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// LogPath is where a container's log lives: <dir>/<id>-json.log, the
// name Docker gives it. Rotated files add .1, .2, ...
func LogPath(dir, id string) string {
	return filepath.Join(dir, id+"-json.log")
}

// File is a container's log file, written by the goroutines that capture
// its stdout and stderr. It is safe for concurrent use.
type File struct {
	path string
	opts Options

	mu     sync.Mutex
	f      *os.File
	size   int64
	buf    bytes.Buffer
	enc    *json.Encoder
	closed bool
}

// OpenFile opens the log file at path for appending, creating it (0640,
// as Docker) if needed; the directory must exist. A last line left
// unterminated by a crash is closed with a newline, so that the next entry
// does not glue onto it (readers skip the broken line).
func OpenFile(path string, opts Options) (*File, error) {
	lf := &File{path: path, opts: opts.withDefaults()}
	lf.enc = json.NewEncoder(&lf.buf)
	lf.enc.SetEscapeHTML(false)
	if err := lf.open(); err != nil {
		return nil, err
	}
	if lf.size > 0 {
		last := make([]byte, 1)
		if _, err := lf.f.ReadAt(last, lf.size-1); err == nil && last[0] != '\n' {
			if _, err := lf.f.Write([]byte{'\n'}); err != nil {
				lf.f.Close()
				return nil, fmt.Errorf("logs: repair %s: %w", path, err)
			}
			lf.size++
		}
	}
	return lf, nil
}

func (lf *File) open() error {
	f, err := os.OpenFile(lf.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("logs: open %s: %w", lf.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logs: open %s: %w", lf.path, err)
	}
	lf.f, lf.size = f, fi.Size()
	return nil
}

// RemoveFile removes the log at path and its rotated files, as when the
// container is removed. Missing files are not an error.
func RemoveFile(path string) error {
	rotated, err := rotatedFiles(path)
	errs := []error{err}
	for _, n := range rotated {
		if err := os.Remove(path + "." + strconv.Itoa(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("logs: remove %s: %w", path, err)
	}
	return nil
}

// Path returns the path of the live log file.
func (lf *File) Path() string { return lf.path }

// WriteEntry appends e as one JSON line, rotating the files first if the
// line would take the live file past MaxSize. An entry without a time is
// stamped with the current one.
func (lf *File) WriteEntry(e Entry) error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.closed {
		return fmt.Errorf("logs: write %s: %w", lf.path, fs.ErrClosed)
	}
	lf.buf.Reset()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	je := jsonEntry{Stream: e.Stream, Time: e.Time.UTC()}
	if e.Partial {
		je.Log = string(e.Line)
	} else {
		je.Log = string(e.Line) + "\n"
	}
	if err := lf.enc.Encode(&je); err != nil { // Encode adds the newline
		return fmt.Errorf("logs: encode entry: %w", err)
	}
	if lf.f == nil || (lf.size > 0 && lf.size+int64(lf.buf.Len()) > lf.opts.MaxSize) {
		if err := lf.rotate(); err != nil {
			return err
		}
	}
	// One write per entry: with O_APPEND a reader sees whole lines, or a
	// last line still being written that it leaves for later.
	n, err := lf.f.Write(lf.buf.Bytes())
	lf.size += int64(n)
	if err != nil {
		return fmt.Errorf("logs: write %s: %w", lf.path, err)
	}
	return nil
}

// rotate shifts <path>.N to <path>.N+1 and <path> to <path>.1, dropping
// what falls beyond MaxFile, then starts a new <path>. Each file keeps its
// inode through the renames, which is how a following reader notices.
// With MaxFile 1 the live file is removed and started afresh.
func (lf *File) rotate() error {
	if lf.f != nil {
		lf.f.Close()
		lf.f = nil
	}
	var errs []error
	rotated, err := rotatedFiles(lf.path)
	if err != nil {
		errs = append(errs, err)
	}
	// rotated is sorted by index; walk it from the oldest.
	for i := len(rotated) - 1; i >= 0; i-- {
		n := rotated[i]
		old := lf.path + "." + strconv.Itoa(n)
		if n+1 >= lf.opts.MaxFile {
			if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if err := os.Rename(old, lf.path+"."+strconv.Itoa(n+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if lf.opts.MaxFile > 1 {
		err = os.Rename(lf.path, lf.path+".1")
	} else {
		err = os.Remove(lf.path)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	// Keep writing even if a rename failed: losing rotation beats losing logs.
	if err := lf.open(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("logs: rotate %s: %w", lf.path, errors.Join(errs...))
	}
	return nil
}

// Close closes the file; later writes fail.
func (lf *File) Close() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.closed {
		return nil
	}
	lf.closed = true
	if lf.f == nil {
		return nil
	}
	return lf.f.Close()
}

// rotatedFiles returns the indexes N of the files <path>.N, ascending
// (newest first).
func rotatedFiles(path string) ([]int, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var idx []int
	for {
		names, err := d.Readdirnames(256)
		for _, name := range names {
			rest, ok := strings.CutPrefix(name, base+".")
			if !ok || rest == "" || rest[0] < '1' || rest[0] > '9' {
				continue
			}
			if n, err := strconv.Atoi(rest); err == nil && n > 0 {
				idx = append(idx, n)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	sort.Ints(idx)
	return idx, nil
}
