package stream

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	big := strings.Repeat("x", 2*MaxPayload+10)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if _, err := w.Stream(Stdout).Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { _, err := w.Stream(Stderr).Write([]byte("err")); return err },
		func() error { return w.Frame(CloseStdin, nil) },
		func() error { return w.Frame(Resize, ResizePayload(24, 80)) },
		func() error { return w.Exit(ExitStatus{Code: 3}) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	var out []byte
	for range 3 {
		k, p, err := r.Next()
		if err != nil || k != Stdout || len(p) > MaxPayload {
			t.Fatalf("stdout frame: kind %d, %d bytes, %v", k, len(p), err)
		}
		out = append(out, p...)
	}
	if string(out) != big {
		t.Errorf("stdout came back as %d bytes, want %d", len(out), len(big))
	}
	if k, p, err := r.Next(); err != nil || k != Stderr || string(p) != "err" {
		t.Errorf("stderr frame: %d %q %v", k, p, err)
	}
	if k, p, err := r.Next(); err != nil || k != CloseStdin || len(p) != 0 {
		t.Errorf("close frame: %d %q %v", k, p, err)
	}
	if k, p, err := r.Next(); err != nil || k != Resize {
		t.Errorf("resize frame: %d %v", k, err)
	} else if rows, cols, err := ParseResize(p); err != nil || rows != 24 || cols != 80 {
		t.Errorf("resize %dx%d %v", rows, cols, err)
	}
	if k, p, err := r.Next(); err != nil || k != Exit {
		t.Errorf("exit frame: %d %v", k, err)
	} else if st, err := ParseExit(p); err != nil || st.Code != 3 || st.Error != "" {
		t.Errorf("exit %+v %v", st, err)
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last frame: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
	}{
		{"too long", []byte{1, 0, 0, 0, 0, 0, 0x80, 1}},
		{"nonzero padding", []byte{1, 0, 1, 0, 0, 0, 0, 0}},
		{"cut header", []byte{1, 0, 0}},
		{"cut payload", []byte{1, 0, 0, 0, 0, 0, 0, 5, 'a'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := NewReader(bytes.NewReader(tt.input)).Next(); !errors.Is(err, ErrFrame) {
				t.Errorf("got %v, want ErrFrame", err)
			}
		})
	}
	if _, _, err := ParseResize([]byte{1}); !errors.Is(err, ErrFrame) {
		t.Errorf("short resize: %v", err)
	}
}
