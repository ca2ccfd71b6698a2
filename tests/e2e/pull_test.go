package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/tests/harness"
)

// TestPullFromRegistry: `pull` and `up` fetch images from a registry (an
// in-process one on 127.0.0.1); a missing image fails `up` with its name
// and creates nothing.
func TestPullFromRegistry(t *testing.T) {
	reg := testimage.StartRegistry(t)
	img, err := testimage.Busybox(testimage.WithFile("etc/motd", 0o644, "pulled\n"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push(context.Background(), "team/box:1", img)
	if err != nil {
		t.Fatal(err)
	}

	e := harness.New(t)
	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: pulled
services:
  box:
    image: %s
    command: ["sleep", "3600"]
    init: true
`, ref))
	e.MustRun("pull")
	if out := e.MustRun("image", "ls").Stdout; !strings.Contains(out, reg.Host+"/team/box") {
		t.Errorf("image ls after pull:\n%s", out)
	}
	e.MustRun("image", "rm", ref)
	// up pulls what is missing.
	e.MustRun("up", "-d")
	if out := e.MustRun("exec", "-T", "box", "cat", "/etc/motd").Stdout; out != "pulled\n" {
		t.Errorf("container of the pulled image: %q", out)
	}
	e.MustRun("down", "-t", "1")

	e.WriteFile("compose.yaml", fmt.Sprintf(`
name: pulled
services:
  ok:
    image: %s
    command: ["sleep", "3600"]
  gone:
    image: %s/team/nothing:here
`, ref, reg.Host))
	r := e.Run("up", "-d")
	if r.Code == 0 || !strings.Contains(r.Stderr, "team/nothing:here") || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 1 {
		t.Errorf("missing image: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if list := ps(t, e); len(list) != 0 {
		t.Errorf("containers created despite the missing image: %+v", list)
	}
}

// TestLoginToPull: a registry with basic auth refuses a pull without
// credentials and serves it after `berth login`, which writes them to
// $DOCKER_CONFIG/config.json; `berth logout` removes them.
func TestLoginToPull(t *testing.T) {
	reg := testimage.StartRegistry(t, testimage.WithBasicAuth("ada", "s3cret"))
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push(context.Background(), "private/box:1", img, authn.FromConfig(authn.AuthConfig{Username: "ada", Password: "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	e := harness.New(t)
	e.Environ = []string{"DOCKER_CONFIG=" + filepath.Join(e.Dir, ".docker")}
	if r := e.Run("image", "pull", ref); r.Code == 0 {
		t.Fatal("pulled from a private registry without credentials")
	}
	if r := e.Run("login", "-u", "ada", "-p", "wrong", reg.Host); r.Code == 0 {
		t.Error("login with a wrong password succeeded")
	}
	if r := e.RunInput("s3cret\n", "login", "-u", "ada", "--password-stdin", reg.Host); r.Code != 0 {
		t.Fatalf("login: %s", r.Stderr)
	}
	e.MustRun("image", "pull", ref)
	if out := e.MustRun("image", "ls").Stdout; !strings.Contains(out, "private/box") {
		t.Errorf("image ls after an authenticated pull:\n%s", out)
	}
	e.MustRun("logout", reg.Host)
	e.MustRun("image", "rm", ref)
	if r := e.Run("image", "pull", ref); r.Code == 0 {
		t.Error("pulled after logout")
	}
}
