package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWrite(t *testing.T) {
	failed := errors.New("fill failed")
	for _, tc := range []struct {
		name    string
		write   func(path string) error
		want    string
		wantErr error
	}{
		{"WriteFile", func(p string) error { return WriteFile(p, []byte("new"), 0o640) }, "new", nil},
		{"WriteFileSync", func(p string) error { return WriteFileSync(p, []byte("new"), 0o640) }, "new", nil},
		{"WriteFunc", func(p string) error {
			return WriteFunc(p, 0o640, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err })
		}, "new", nil},
		{"WriteFunc fails", func(p string) error {
			return WriteFunc(p, 0o640, func(w io.Writer) error { io.WriteString(w, "half"); return failed })
		}, "old", failed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := tc.write(p); !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			got, err := os.ReadFile(p)
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q %v, want %q", got, err, tc.want)
			}
			if fi, _ := os.Stat(p); tc.wantErr == nil && fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v", fi.Mode())
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("temporary file left: %v", ents)
			}
		})
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.json", ".a.json.tmp-123", ".b.tmp-9", "c.tmp-1", ".d.tmp-"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveStale(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if want := []string{".d.tmp-", "a.json", "c.tmp-1"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	if err := RemoveStale(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("a missing directory: %v", err)
	}
}
