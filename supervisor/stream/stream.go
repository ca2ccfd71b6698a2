// Package stream carries a process's stdio between the CLI and the
// supervisor over one connection: its input, its two outputs, the end of
// its input, its terminal's size and its exit, in frames.
//
// A frame is an 8-byte header, the kind, three zero bytes and the payload's
// length (big-endian, as in Docker's stdcopy), then the payload, at most
// MaxPayload bytes. Both sides read through one buffer of that size, so a
// peer that sends without end costs no more memory than that.
package stream

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Kind says what a frame holds.
type Kind byte

const (
	Stdin      Kind = 0 // CLI to supervisor: input for the process
	Stdout     Kind = 1 // supervisor to CLI: output
	Stderr     Kind = 2 // supervisor to CLI: output
	CloseStdin Kind = 3 // CLI to supervisor: the input ended (no payload)
	Resize     Kind = 4 // CLI to supervisor: the terminal's size (see ResizePayload)
	Exit       Kind = 5 // supervisor to CLI: the last frame (a JSON ExitStatus)
	Signal     Kind = 6 // CLI to supervisor: a signal for the process (its number, one byte)
)

// MaxPayload bounds a frame's payload.
const MaxPayload = 32 * 1024

const headerSize = 8

// ExitStatus ends a stream: the process's exit code, or why it could not
// run (Error set, Code the exit code docker gives a command that could not
// start).
type ExitStatus struct {
	Code  int    `json:"code"`
	Error string `json:"error,omitempty"`
}

// Writer writes frames; it is safe for concurrent use, each frame going out
// whole.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer that sends frames to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, buf: make([]byte, headerSize+MaxPayload)}
}

// Frame sends p as frames of kind k, cut at MaxPayload; an empty p sends
// one empty frame.
func (w *Writer) Frame(k Kind, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for first := true; first || len(p) > 0; first = false {
		n := min(len(p), MaxPayload)
		b := w.buf[:headerSize+n]
		b[0], b[1], b[2], b[3] = byte(k), 0, 0, 0
		binary.BigEndian.PutUint32(b[4:], uint32(n))
		copy(b[headerSize:], p[:n])
		if _, err := w.w.Write(b); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// Stream returns an io.Writer whose writes go out as frames of kind k.
func (w *Writer) Stream(k Kind) io.Writer { return kindWriter{w, k} }

type kindWriter struct {
	w *Writer
	k Kind
}

func (kw kindWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := kw.w.Frame(kw.k, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Exit sends the last frame.
func (w *Writer) Exit(st ExitStatus) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return w.Frame(Exit, b)
}

// Reader reads frames.
type Reader struct {
	r   io.Reader
	buf []byte
}

// NewReader returns a Reader of the frames in r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r, buf: make([]byte, headerSize+MaxPayload)}
}

// ErrFrame is wrapped by the errors of a malformed frame.
var ErrFrame = errors.New("stream: malformed frame")

// Next returns the next frame. The payload is valid until the next call.
// A stream that ends between frames returns io.EOF.
func (r *Reader) Next() (Kind, []byte, error) {
	h := r.buf[:headerSize]
	if _, err := io.ReadFull(r.r, h); err != nil {
		if err == io.ErrUnexpectedEOF {
			return 0, nil, fmt.Errorf("%w: cut in its header", ErrFrame)
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[4:])
	if h[1] != 0 || h[2] != 0 || h[3] != 0 || n > MaxPayload {
		return 0, nil, fmt.Errorf("%w: header % x", ErrFrame, h)
	}
	p := r.buf[headerSize : headerSize+n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		return 0, nil, fmt.Errorf("%w: cut in its payload: %w", ErrFrame, err)
	}
	return Kind(h[0]), p, nil
}

// ResizePayload is a Resize frame's payload: rows and columns.
func ResizePayload(rows, cols uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, rows), cols)
}

// ParseResize reads a Resize frame's payload.
func ParseResize(p []byte) (rows, cols uint16, err error) {
	if len(p) != 4 {
		return 0, 0, fmt.Errorf("%w: resize of %d bytes", ErrFrame, len(p))
	}
	return binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]), nil
}

// ParseExit reads an Exit frame's payload.
func ParseExit(p []byte) (ExitStatus, error) {
	var st ExitStatus
	if err := json.Unmarshal(p, &st); err != nil {
		return st, fmt.Errorf("%w: exit: %w", ErrFrame, err)
	}
	return st, nil
}
