package e2e

import (
	"strings"
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// TestListingFiltersAndTemplates: ps --filter, --no-trunc, --orphans and
// Go templates; ls --filter and templates; images, volumes and version
// templates.
func TestListingFiltersAndTemplates(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `
name: fmt
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "exec sleep 3600", "with-a-long-tail-of-arguments"]
    volumes: [data:/data]
  job:
    image: busybox:latest
    command: ["true"]
  old:
    image: busybox:latest
    command: ["sleep", "3600"]
volumes:
  data:
`)
	e.MustRun("up", "-d", "--wait", "web", "old")
	e.MustRun("up", "-d", "job")
	e.MustRun("wait", "job")
	// "old" leaves the file: its container is an orphan.
	e.WriteFile("compose.yaml", `
name: fmt
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "exec sleep 3600", "with-a-long-tail-of-arguments"]
    volumes: [data:/data]
  job:
    image: busybox:latest
    command: ["true"]
volumes:
  data:
`)
	checks := []struct {
		args []string
		want string
	}{
		{[]string{"ps", "-a", "--format", "{{.Service}} {{.State}}"}, "job exited\nold running\nweb running\n"},
		{[]string{"ps", "-a", "--filter", "status=exited", "--format", "{{.Name}}"}, "fmt-job-1\n"},
		{[]string{"ps", "--orphans=false", "--format", "{{.Service}}"}, "web\n"},
		{[]string{"ps", "--format", "table {{.Service}}\t{{.State}}", "web"}, "SERVICE   STATE\nweb       running\n"},
		{[]string{"ls", "--filter", "name=fm", "--format", "{{.Name}}"}, "fmt\n"},
		{[]string{"ls", "--filter", "name=nope", "-q"}, ""},
		{[]string{"images", "--format", "{{.Repository}}:{{.Tag}}", "web"}, "busybox:latest\n"},
		{[]string{"volumes", "--format", "{{.Name}}"}, "fmt_data\n"},
		{[]string{"version", "-f", "{{.Os}}"}, "linux\n"},
	}
	for _, c := range checks {
		if got := e.MustRun(c.args...).Stdout; got != c.want {
			t.Errorf("berth %s = %q, want %q", strings.Join(c.args, " "), got, c.want)
		}
	}
	if out := e.MustRun("ps", "--no-trunc", "web").Stdout; !strings.Contains(out, "with-a-long-tail-of-arguments") {
		t.Errorf("ps --no-trunc cut the command:\n%s", out)
	}
	if out := e.MustRun("ps", "web").Stdout; strings.Contains(out, "with-a-long-tail-of-arguments") {
		t.Errorf("ps did not truncate the command:\n%s", out)
	}
	for _, bad := range [][]string{{"ps", "--filter", "name=web"}, {"ls", "--filter", "status=x"}, {"ps", "--format", "{{.Nope"}} {
		if r := e.Run(bad...); r.Code == 0 {
			t.Errorf("berth %s succeeded", strings.Join(bad, " "))
		}
	}
	e.MustRun("down", "-v", "--remove-orphans")
}
