package e2e

import (
	"strings"
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// TestDebianImage: the Debian base image tests/debian makes runs its own
// userland: bash, dpkg's database, apt.
func TestDebianImage(t *testing.T) {
	e := harness.New(t)
	e.DebianImage("debian:bookworm")
	e.WriteFile("compose.yaml", `name: deb
services:
  s:
    image: debian:bookworm
    command: ["bash", "-c", "cat /etc/debian_version; dpkg-query -W -f='$${Status}\n' apt; echo $$PATH"]
`)
	e.MustRun("up")
	out := e.MustRun("logs", "--no-log-prefix", "s").Stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "12.") || lines[1] != "install ok installed" || lines[2] != "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" {
		t.Errorf("output of the Debian container: %q", out)
	}
	e.MustRun("down")
}
