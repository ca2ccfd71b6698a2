package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// buildSampleImages runs samples/build-images.sh against this Env's store.
func buildSampleImages(t *testing.T, e *harness.Env) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(repo(t), "samples", "build-images.sh"))
	cmd.Env = append(os.Environ(), "BERTH="+e.Bin, "BERTH_ROOT="+e.Root, "BERTH_RUN_ROOT="+e.RunRoot)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-images.sh: %v\n%s", err, out)
	}
}

// TestWordpressScenario is the seed's workflow (seed 001:431-448): down,
// up -d, scale wordpress=5, with the one entry port in front of all five.
func TestWordpressScenario(t *testing.T) {
	e := harness.New(t)
	buildSampleImages(t, e)
	port := freePort(t)
	e.Dir = filepath.Join(repo(t), "samples", "wordpress")
	e.Environ = []string{"WORDPRESS_PORT=" + strconv.Itoa(port), "COMPOSE_PROJECT_NAME=wpscenario"}

	e.MustRun("down")
	e.MustRun("up", "-d")
	e.MustRun("scale", "wordpress=5")
	if n := len(ps(t, e, "wordpress")); n != 5 {
		t.Fatalf("%d wordpress replicas", n)
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < 5 && time.Now().Before(deadline) {
		body, err := getReady(t, port)
		if err != nil {
			t.Fatalf("entry port: %v", err)
		}
		if f := strings.Fields(body); len(f) >= 3 {
			seen[f[2]] = true // "hello from <hostname> ..."
		}
	}
	if len(seen) != 5 {
		t.Errorf("the entry port reached %d of 5 replicas: %v", len(seen), seen)
	}
	e.MustRun("down", "-v", "-t", "1")
}
