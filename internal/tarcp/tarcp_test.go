package tarcp

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "d/sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "d/sub/f"), []byte("data"), 0o640))
	must(t, os.Symlink("sub/f", filepath.Join(src, "d/link")))

	tests := []struct {
		name     string
		root     string
		opts     Options
		wantFile string // relative to the destination
	}{
		{"as is", "d", Options{}, "d/sub/f"},
		{"renamed", "d", Options{From: "d", To: "e"}, "e/sub/f"},
		{"contents", "d", Options{From: "d", To: ""}, "sub/f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			must(t, Write(&buf, filepath.Join(src, "d"), tt.root, false))
			dst := t.TempDir()
			tt.opts.Uid, tt.opts.Gid = os.Getuid(), os.Getgid()
			must(t, Extract(&buf, dst, tt.opts))
			b, err := os.ReadFile(filepath.Join(dst, tt.wantFile))
			if err != nil || string(b) != "data" {
				t.Fatalf("%s: %q %v", tt.wantFile, b, err)
			}
			fi, _ := os.Stat(filepath.Join(dst, tt.wantFile))
			if fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v", fi.Mode())
			}
			link := filepath.Join(filepath.Dir(filepath.Dir(filepath.Join(dst, tt.wantFile))), "link")
			if l, err := os.Readlink(link); err != nil || l != "sub/f" {
				t.Errorf("symlink: %q %v", l, err)
			}
		})
	}
}

// TestExtractStaysInside: names and symlinks that climb out, absolute or
// relative, land inside the destination; an existing symlink in the way
// is replaced, not written through.
func TestExtractStaysInside(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		prepare func(dst string)
		entries []tar.Header
		data    string
	}{
		{"dot-dot name", nil, []tar.Header{{Name: "../../" + filepath.Base(outside) + "/x", Typeflag: tar.TypeReg}}, "x"},
		{"absolute link as parent", func(dst string) { must(t, os.Symlink(outside, filepath.Join(dst, "abs"))) },
			[]tar.Header{{Name: "abs/x", Typeflag: tar.TypeReg}}, "x"},
		{"relative link as parent", func(dst string) { must(t, os.Symlink("../../../../../../"+outside, filepath.Join(dst, "rel"))) },
			[]tar.Header{{Name: "rel/x", Typeflag: tar.TypeReg}}, "x"},
		{"link in the archive", nil, []tar.Header{
			{Name: "l", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "l/x", Typeflag: tar.TypeReg},
		}, "x"},
		{"existing link as the file", func(dst string) { must(t, os.Symlink(filepath.Join(outside, "x"), filepath.Join(dst, "f"))) },
			[]tar.Header{{Name: "f", Typeflag: tar.TypeReg}}, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := t.TempDir()
			if tt.prepare != nil {
				tt.prepare(dst)
			}
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range tt.entries {
				h.Mode = 0o644
				if h.Typeflag == tar.TypeReg {
					h.Size = int64(len(tt.data))
				}
				must(t, tw.WriteHeader(&h))
				if h.Typeflag == tar.TypeReg {
					tw.Write([]byte(tt.data))
				}
			}
			must(t, tw.Close())
			_ = Extract(&buf, dst, Options{Uid: os.Getuid(), Gid: os.Getgid()})
			if _, err := os.Lstat(filepath.Join(outside, "x")); err == nil {
				os.Remove(filepath.Join(outside, "x"))
				t.Fatalf("wrote outside the destination")
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
