package supervisor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// journalMaxSize caps each of the event journal's two files: past it the
// journal is rotated once, so a project keeps between one and two of these
// of history (about 5000 to 10000 events).
const journalMaxSize = 1 << 20

// journal keeps the project's container events on disk, so that `berth
// events --since` can replay them and a supervisor started after another
// died carries on the same history. Each event is one JSON line written by
// one write(2) in append mode: a crash leaves at most a torn last line,
// which reading skips and the next supervisor ends with a newline before it
// appends.
type journal struct {
	path string
	w    *logWriter
	seq  uint64 // of the last event written
	// files is held to write (which may rotate) and to replay, so that a
	// replay never reads the rotated file before the rotation and the
	// new one after it, missing the events in between.
	files sync.RWMutex
}

// openJournal opens the journal at path, mending a torn tail.
func openJournal(path string) *journal {
	j := &journal{path: path, w: newLogWriter(path, journalMaxSize)}
	j.w.drop = true
	for _, p := range []string{path + ".1", path} {
		_ = scanJournal(p, func(e Event) {
			if e.Seq > j.seq {
				j.seq = e.Seq
			}
		})
	}
	if f, err := os.Open(path); err == nil {
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
			last := make([]byte, 1)
			if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
				_, _ = j.w.Write([]byte("\n"))
			}
		}
	}
	return j
}

// append numbers e and writes it. The caller holds the supervisor's mutex,
// so numbers and lines are in the order subscribers see the events.
func (j *journal) append(e *Event) {
	if j == nil {
		return
	}
	j.seq++
	e.Seq = j.seq
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	j.files.Lock()
	defer j.files.Unlock()
	_, _ = j.w.Write(append(b, '\n'))
}

// replay calls fn, oldest first, for the journal's events numbered at most
// upTo and stamped within [since, until] (a zero until has no end). The
// files are read under the lock and fn is called after it, so that a slow
// reader never holds up the writers.
func (j *journal) replay(upTo uint64, since, until time.Time, fn func(Event)) {
	if j == nil {
		return
	}
	var evs []Event
	j.files.RLock()
	for _, p := range []string{j.path + ".1", j.path} {
		_ = scanJournal(p, func(e Event) {
			if e.Seq == 0 || e.Seq > upTo || e.Time.Before(since) || !until.IsZero() && e.Time.After(until) {
				return
			}
			evs = append(evs, e)
		})
	}
	j.files.RUnlock()
	for _, e := range evs {
		fn(e)
	}
}

// scanJournal reads one journal file, skipping lines that do not parse (a
// write a crash cut short).
func scanJournal(path string, fn func(Event)) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 && err == nil {
			var e Event
			if json.Unmarshal(line, &e) == nil {
				fn(e)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
