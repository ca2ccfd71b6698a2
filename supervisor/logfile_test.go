package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogWriterRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "supervisor.log")
	w := newLogWriter(path, 100)
	line := strings.Repeat("x", 39) + "\n" // 40 bytes
	for range 5 {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	cur, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if len(cur) > 100 || len(old) > 100 {
		t.Errorf("log %d bytes, rotated %d bytes: over the cap of 100", len(cur), len(old))
	}
	if len(cur) != 40 || len(old) != 80 {
		t.Errorf("log %d bytes, rotated %d: want the newest line in the log and the two before it rotated", len(cur), len(old))
	}
}
