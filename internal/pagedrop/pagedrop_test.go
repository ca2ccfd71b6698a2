package pagedrop

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// present counts the pages of b mapped in this process (/proc/self/pagemap,
// bit 63), without touching them.
func present(t *testing.T, b []byte) int {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(&b[0]))
	buf := make([]byte, 8*(uintptr(len(b))/page))
	if _, err := f.ReadAt(buf, int64(start/page*8)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; i < len(buf); i += 8 {
		if binary.LittleEndian.Uint64(buf[i:])>>63 == 1 {
			n++
		}
	}
	return n
}

// TestWhenQuiet maps a file read-only, reads it, and checks that WhenQuiet
// drops its pages from this process once it is quiet, and that they read
// back the same.
func TestWhenQuiet(t *testing.T) {
	const size = 64 << 10
	path := filepath.Join(t.TempDir(), "f")
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i % 251)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if string(m) != string(data) {
		t.Fatal("the mapping reads different from the file")
	}
	pages := size / os.Getpagesize()
	if n := present(t, m); n != pages {
		t.Fatalf("%d of %d pages mapped after reading them all", n, pages)
	}
	start := uintptr(unsafe.Pointer(&m[0]))
	if err := WhenQuiet([]Range{{start, start + size}}); err != nil {
		t.Fatal(err)
	}
	if n := present(t, m); n != pages {
		t.Errorf("%d of %d pages mapped right after WhenQuiet: the drop should wait", n, pages)
	}
	deadline := time.Now().Add(5 * time.Second)
	for present(t, m) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d pages still mapped 5 s after WhenQuiet", present(t, m))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if string(m) != string(data) {
		t.Error("the file's content reads back different after the drop")
	}
}

// TestWhenQuietTooMany checks that more ranges than a drop holds are
// refused, so that the caller drops them itself.
func TestWhenQuietTooMany(t *testing.T) {
	if err := WhenQuiet(make([]Range, 17)); err == nil {
		t.Error("WhenQuiet took 17 ranges")
	}
}
