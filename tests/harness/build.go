package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildStatic compiles the main package in dir (relative to the calling
// test's package directory, e.g. "./testdata/sink") into a static binary
// and returns its bytes, to be put into a test image.
func BuildStatic(t testing.TB, dir string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bin")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", dir, err, msg)
	}
	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return body
}
