package supervisor

import (
	"os"
	"sync"
)

// logMaxSize caps the supervisor's log: past it the log is rotated once
// (to supervisor.log.1), so a supervisor that runs for months with a
// failing container keeps at most twice this much.
const logMaxSize = 1 << 20

// logWriter appends to a file and rotates it when it grows past max.
type logWriter struct {
	path string
	max  int64
	mu   sync.Mutex
	f    *os.File
	size int64
	drop bool // what cannot be written is lost rather than sent to stderr
}

func newLogWriter(path string, max int64) *logWriter {
	return &logWriter{path: path, max: max}
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil || w.size+int64(len(b)) > w.max {
		if err := w.open(int64(len(b))); err != nil {
			if w.drop {
				return len(b), nil
			}
			// The log is help, not state: a line on stderr beats failing.
			return os.Stderr.Write(b)
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	return n, err
}

// open (re)opens the log, rotating it first when next more bytes would
// take it past its cap.
func (w *logWriter) open(next int64) error {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if fi, err := os.Stat(w.path); err == nil && fi.Size() > 0 && fi.Size()+next > w.max {
		_ = os.Rename(w.path, w.path+".1")
	}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, fi.Size()
	return nil
}
