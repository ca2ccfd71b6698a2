package project

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// seedFiles are the compose files of the samples and the test fixtures.
func seedFiles(t testing.TB) []string {
	var out []string
	for _, root := range []string{"../samples", "../tests/testdata", "../tests/e2e/testdata"} {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				out = append(out, p)
			}
			return nil
		})
	}
	if len(out) == 0 {
		t.Fatal("no seed compose files found")
	}
	return out
}

// FuzzLoad feeds the loader mutated compose files: it must return a project
// or an error, never panic or hang. Each input is written to a fresh
// temporary directory and loaded from there; the loader only reads.
func FuzzLoad(f *testing.F) {
	for _, p := range seedFiles(f) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"services:\n  web:\n    image: busybox\n    configs: [{source: c, target: 1}]\nconfigs:\n  c:\n    content: x\n",
		"include: [/dev/zero]\n",
		"services:\n  web:\n    image: busybox\n    ports: [\"1-65535:1-65535\"]\n",
		"services:\n  web:\n    image: busybox\n    restart: on-failure:-1\n    stop_signal: SIGFOO\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		dir := t.TempDir()
		file := filepath.Join(dir, "compose.yaml")
		if err := os.WriteFile(file, content, 0o644); err != nil {
			t.Fatal(err)
		}
		type result struct {
			p   *Project
			err error
		}
		done := make(chan result, 1)
		go func() {
			p, err := Load(context.Background(), Options{Files: []string{file}, WorkDir: dir, Environ: []string{}})
			done <- result{p, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("load did not end:\n%s", content)
		}
		p, err := r.p, r.err
		if err != nil {
			var le *Error
			if !errors.As(err, &le) || err.Error() == "" {
				t.Fatalf("error %T %q is not a load error", err, err)
			}
			return
		}
		_, _ = p.Model()
	})
}
