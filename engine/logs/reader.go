package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// followInterval is how often a following reader looks for new lines and
// rotations. Polling keeps readers independent of the writer (another
// process) and of inotify limits; a tenth of a second is below what a
// person at a terminal notices.
const followInterval = 100 * time.Millisecond

// ReadOptions select the entries that Read returns.
type ReadOptions struct {
	// Tail is how many of the last entries to start with; negative means
	// all of them, zero none (with Follow: only what comes next). As in
	// Docker, Tail picks the last entries of the log first, and Since and
	// Until then filter those.
	Tail int
	// Since, when set, skips entries older than it.
	Since time.Time
	// Until, when set, ends the read at the first entry newer than it, and
	// ends a Follow once the clock passes it.
	Until time.Time
	// Follow keeps reading as the log grows and rotates, until ctx is
	// cancelled or Done is closed.
	Follow bool
	// Done, closed by the caller when the container has exited and its
	// output is all in the file, ends a Follow once the entries left in the
	// file are read. Nil never fires.
	Done <-chan struct{}
}

// errStop ends a read at Until.
var errStop = errors.New("logs: past until")

// Read calls fn with the entries of the log at path (see LogPath), oldest
// first, across its rotated files. A log that does not exist yet reads as
// empty. Lines that are not valid entries (a crash in the middle of a
// write) are skipped. An error from fn ends the read and is returned.
//
// Without Follow, Read returns nil at the end of the log. With Follow it
// returns nil after Done is closed and the rest is read, or after Until.
// Either way it returns ctx.Err() once ctx is cancelled. Read takes no lock: it relies on
// the writer writing each line in one write and rotating by renames.
func Read(ctx context.Context, path string, opts ReadOptions, fn func(Entry) error) error {
	r := &reader{ctx: ctx, path: path, opts: opts, fn: fn}
	defer r.close()
	err := r.run()
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

type reader struct {
	ctx  context.Context
	path string
	opts ReadOptions
	fn   func(Entry) error

	cur     *os.File    // the newest file read so far
	curInfo os.FileInfo // its identity, to tell a rotation
	off     int64       // the end of the last complete line read in cur
	br      *bufio.Reader
	line    []byte // a line longer than br's buffer, being put together
}

func (r *reader) close() {
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
}

func (r *reader) run() error {
	ctx := r.ctx
	chain, err := r.openChain(nil)
	if err != nil {
		return err
	}
	if r.opts.Tail >= 0 {
		err = r.readTail(chain)
	} else {
		err = r.readAll(chain)
	}
	if err != nil || !r.opts.Follow {
		return err
	}

	ticker := time.NewTicker(followInterval)
	defer ticker.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		last := false
		select {
		case <-r.opts.Done:
			last = true
		default:
		}
		if !r.opts.Until.IsZero() && time.Now().After(r.opts.Until) {
			last = true
		}
		if err := r.poll(); err != nil || last {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.opts.Done:
		case <-ticker.C:
		}
	}
}

// logFile is an open log file and its identity.
type logFile struct {
	f  *os.File
	fi os.FileInfo
}

// openChain opens the log files newer than after (all of them when after
// is nil), and returns them oldest first. It opens the newest first: if a
// rotation happens meanwhile, a file is met twice (kept once, at its newer
// place) rather than missed.
func (r *reader) openChain(after os.FileInfo) ([]logFile, error) {
	rotated, err := rotatedFiles(r.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("logs: read %s: %w", r.path, err)
	}
	names := []string{r.path}
	for _, n := range rotated {
		names = append(names, r.path+"."+strconv.Itoa(n))
	}
	var chain []logFile // newest first
	closeAll := func() {
		for _, lf := range chain {
			lf.f.Close()
		}
	}
open:
	for _, name := range names {
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // rotated or removed since the listing
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("logs: read %s: %w", r.path, err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			closeAll()
			return nil, fmt.Errorf("logs: read %s: %w", r.path, err)
		}
		if after != nil && os.SameFile(fi, after) {
			f.Close()
			break
		}
		for _, lf := range chain {
			if os.SameFile(fi, lf.fi) {
				f.Close()
				continue open
			}
		}
		chain = append(chain, logFile{f, fi})
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}

// setCur makes lf the file to follow, read up to off.
func (r *reader) setCur(lf logFile, off int64) {
	r.close()
	r.cur, r.curInfo, r.off = lf.f, lf.fi, off
}

// readAll emits every entry of chain; the newest file becomes cur.
func (r *reader) readAll(chain []logFile) error {
	for i, lf := range chain {
		off, err := r.readLines(lf.f, 0)
		if i == len(chain)-1 {
			r.setCur(lf, off)
		} else {
			lf.f.Close()
		}
		if err != nil {
			for _, rest := range chain[i+1:] {
				rest.f.Close()
			}
			return err
		}
	}
	return nil
}

// readTail emits the last Tail entries of chain, reading files from the
// newest back only as far as needed, and each from its end (scanBack): a
// long log costs the time and memory of its last entries only. The newest
// file becomes cur.
func (r *reader) readTail(chain []logFile) error {
	var tail []Entry // newest first
	keep := func(line []byte) bool {
		if len(tail) >= r.opts.Tail {
			return false
		}
		if e, ok := decodeEntry(line); ok {
			tail = append(tail, e)
		}
		return len(tail) < r.opts.Tail
	}
	for i := len(chain) - 1; i >= 0; i-- {
		lf := chain[i]
		if len(tail) >= r.opts.Tail && i < len(chain)-1 {
			lf.f.Close()
			continue
		}
		end, err := scanBack(lf.f, keep)
		if i == len(chain)-1 {
			// An unfinished last line is left for the follow loop.
			r.setCur(lf, end)
		} else {
			lf.f.Close()
		}
		if err != nil {
			for _, rest := range chain[:i] {
				rest.f.Close()
			}
			return err
		}
	}
	for i := len(tail) - 1; i >= 0; i-- {
		if err := r.emit(tail[i]); err != nil {
			return err
		}
	}
	return nil
}

// maxEntrySize bounds one line of a log file. An entry holds at most
// MaxLineSize bytes of output, which JSON escaping makes at most six times
// longer; a longer line was not written by berth's splitter (a log of an
// older version, or a file written by hand) and is skipped rather than
// loaded whole.
const maxEntrySize = 1 << 20

// scanBlock is how much scanBack reads at a time.
const scanBlock = 64 * 1024

// scanBack calls fn with the complete lines of f, newest first, without
// their newline, until fn returns false; lines longer than maxEntrySize are
// skipped. fn must not keep the slice. It returns the offset just past the
// last newline of f: what follows is a line still being written.
func scanBack(f *os.File, fn func(line []byte) bool) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("logs: read %s: %w", f.Name(), err)
	}
	buf := make([]byte, scanBlock)
	var carry []byte // the start of the current line's later bytes, read in an earlier block
	tooLong := false
	end := int64(-1) // offset past the last newline, once found
	line := func(head []byte) bool {
		defer func() { carry, tooLong = carry[:0], false }()
		if tooLong || len(head)+len(carry) > maxEntrySize {
			return true
		}
		if len(carry) == 0 {
			return fn(head)
		}
		return fn(append(append(make([]byte, 0, len(head)+len(carry)), head...), carry...))
	}
	for pos := fi.Size(); pos > 0; {
		start := max(0, pos-scanBlock)
		b := buf[:pos-start]
		if _, err := f.ReadAt(b, start); err != nil && err != io.EOF {
			return max(end, 0), fmt.Errorf("logs: read %s: %w", f.Name(), err)
		}
		for {
			i := bytes.LastIndexByte(b, '\n')
			if i < 0 {
				break
			}
			if end < 0 {
				end = start + int64(i) + 1
			} else if !line(b[i+1:]) {
				return end, nil
			}
			b = b[:i]
		}
		if end >= 0 && !tooLong {
			if len(b)+len(carry) > maxEntrySize {
				tooLong = true
				carry = carry[:0]
			} else {
				carry = append(append(make([]byte, 0, len(b)+len(carry)), b...), carry...)
			}
		}
		pos = start
	}
	if end < 0 {
		return 0, nil
	}
	line(nil) // the file's first line
	return end, nil
}

// poll reads what was added to the log since the last call, following a
// rotation to the files that replaced cur.
func (r *reader) poll() error {
	var err error
	if r.cur != nil {
		if r.off, err = r.readLines(r.cur, r.off); err != nil {
			return err
		}
	}
	fi, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // between a rotation's rename and the new file
	}
	if err != nil {
		return fmt.Errorf("logs: read %s: %w", r.path, err)
	}
	if r.cur != nil && os.SameFile(fi, r.curInfo) {
		if fi.Size() < r.off {
			r.off = 0 // truncated in place by someone else
		}
		return nil
	}
	if r.cur != nil {
		// Lines written to cur between the read above and its rename.
		if r.off, err = r.readLines(r.cur, r.off); err != nil {
			return err
		}
	}
	chain, err := r.openChain(r.curInfo)
	if err != nil {
		return err
	}
	if len(chain) == 0 {
		return nil
	}
	return r.readAll(chain)
}

// readLines emits each complete line of f from offset off and returns the
// offset after the last complete line. It holds at most maxEntrySize of a
// line: a longer one is read through and skipped.
func (r *reader) readLines(f *os.File, off int64) (int64, error) {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return off, fmt.Errorf("logs: read %s: %w", f.Name(), err)
	}
	if r.br == nil {
		r.br = bufio.NewReaderSize(f, 64*1024)
	} else {
		r.br.Reset(f)
	}
	pos := off
	r.line = r.line[:0]
	tooLong := false
	for {
		chunk, err := r.br.ReadSlice('\n')
		pos += int64(len(chunk))
		switch {
		case err == bufio.ErrBufferFull:
			if !tooLong && len(r.line)+len(chunk) > maxEntrySize {
				tooLong, r.line = true, r.line[:0]
			}
			if !tooLong {
				r.line = append(r.line, chunk...)
			}
			continue
		case err == io.EOF:
			return off, nil // an unfinished line waits for its newline
		case err != nil:
			return off, fmt.Errorf("logs: read %s: %w", f.Name(), err)
		}
		off = pos
		line := chunk[:len(chunk)-1]
		if len(r.line) > 0 {
			r.line = append(r.line, line...)
			line = r.line
		}
		if tooLong || len(line) > maxEntrySize {
			line = nil
		}
		tooLong, r.line = false, r.line[:0]
		if err := r.emitLine(line); err != nil {
			return off, err
		}
	}
}

func (r *reader) emitLine(line []byte) error {
	e, ok := decodeEntry(line)
	if !ok {
		return nil
	}
	return r.emit(e)
}

func (r *reader) emit(e Entry) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	if !r.opts.Since.IsZero() && e.Time.Before(r.opts.Since) {
		return nil
	}
	if !r.opts.Until.IsZero() && e.Time.After(r.opts.Until) {
		return errStop
	}
	return r.fn(e)
}

// decodeEntry parses one line of a json-file log.
func decodeEntry(line []byte) (Entry, bool) {
	var je jsonEntry
	if len(line) == 0 || json.Unmarshal(line, &je) != nil {
		return Entry{}, false
	}
	e := Entry{Time: je.Time, Stream: je.Stream, Line: []byte(je.Log)}
	if n := len(e.Line); n > 0 && e.Line[n-1] == '\n' {
		e.Line = e.Line[:n-1]
	} else {
		e.Partial = true
	}
	return e, true
}
