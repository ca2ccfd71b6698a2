package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/tests/harness"
)

// TestExportCommit: export writes the container's filesystem with its
// changes; commit makes an image of it that runs with the container's
// command and environment.
func TestExportCommit(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: snap
services:
  app:
    image: busybox
    command: ["sh", "-c", "echo $$GREETING > /greeting; sleep 3600"]
    environment: {GREETING: hello}
    init: true
`)
	e.MustRun("up", "-d")
	e.MustRun("exec", "-T", "app", "sh", "-c", "echo marked > /tmp/marker")
	e.MustRun("export", "-o", "fs.tar", "app")
	f, err := os.Open(filepath.Join(e.Dir, "fs.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if !contains(names, "tmp/marker") || !contains(names, "greeting") || !contains(names, "bin/sh") {
		t.Errorf("export lacks the container's files: %d entries", len(names))
	}

	r := e.MustRun("commit", "-m", "snapshot", "app", "snap/app:1")
	if !strings.HasPrefix(strings.TrimSpace(r.Stdout), "sha256:") {
		t.Errorf("commit printed %q", r.Stdout)
	}
	e.MustRun("down", "-t", "1")
	e.WriteFile("compose.yaml", `
name: snap2
services:
  again:
    image: snap/app:1
`)
	r = e.MustRun("run", "--rm", "-T", "again", "sh", "-c", "cat /tmp/marker /greeting; echo $GREETING")
	if r.Stdout != "marked\nhello\nhello\n" {
		t.Errorf("run of the committed image: %q", r.Stdout)
	}
	e.MustRun("down")
}

// TestPush: push sends a built service's image to its registry; the
// registry then has the store's manifest, and a pull back gives the same
// image.
func TestPush(t *testing.T) {
	reg := testimage.StartRegistry(t)
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	ref := reg.Host + "/team/app:1"
	e.MustRun("image", "tag", "busybox:latest", ref)
	e.WriteFile("app/Dockerfile", "FROM busybox\n")
	e.WriteFile("compose.yaml", `
name: pushed
services:
  app:
    build: ./app
    image: `+ref+`
  pulled:
    image: busybox
`)
	inspect := func() (id string, digests []string) {
		t.Helper()
		var out []struct {
			ID          string   `json:"Id"`
			RepoDigests []string `json:"RepoDigests"`
		}
		if err := json.Unmarshal([]byte(e.MustRun("image", "inspect", ref).Stdout), &out); err != nil || len(out) != 1 {
			t.Fatalf("image inspect: %v", err)
		}
		return out[0].ID, out[0].RepoDigests
	}
	before, _ := inspect()
	e.MustRun("push")
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r)
	if err != nil {
		t.Fatalf("the registry lacks %s: %v", ref, err)
	}
	e.MustRun("image", "rm", ref)
	e.MustRun("pull", "app")
	after, digests := inspect()
	if after != before {
		t.Errorf("pulled back %s, pushed %s", after, before)
	}
	if len(digests) != 1 || !strings.HasSuffix(digests[0], "@"+desc.Digest.String()) {
		t.Errorf("repo digests %v, registry digest %s", digests, desc.Digest)
	}
}

// TestRunPulls: run pulls a missing image and says so, unless
// --quiet-pull.
func TestRunPulls(t *testing.T) {
	reg := testimage.StartRegistry(t)
	img, err := testimage.Busybox(testimage.WithFile("etc/motd", 0o644, "pulled\n"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push(context.Background(), "team/tool:1", img)
	if err != nil {
		t.Fatal(err)
	}
	e := harness.New(t)
	e.WriteFile("compose.yaml", `
name: runpull
services:
  tool:
    image: `+ref+`
`)
	r := e.MustRun("run", "--rm", "-T", "tool", "cat", "/etc/motd")
	if r.Stdout != "pulled\n" || !strings.Contains(r.Stderr, "tool Pulled") {
		t.Errorf("run of a missing image: stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
	e.MustRun("image", "rm", ref)
	r = e.MustRun("run", "--rm", "-T", "--quiet-pull", "tool", "cat", "/etc/motd")
	if r.Stdout != "pulled\n" || strings.Contains(r.Stderr, "Pull") {
		t.Errorf("run --quiet-pull: stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
	e.MustRun("down")
}
