package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/bridge"
)

func TestPrintPods(t *testing.T) {
	created := time.Now().Add(-90 * time.Second)
	pods := []bridge.Pod{
		{Name: "web-5d8f-abcde", Namespace: "shop", Service: "web", Image: "nginx", Created: created,
			State: "Running", Status: "Running (1/1 ready)", Ready: "1/1", Ports: "80/tcp"},
		{Name: "seed-xyz", Namespace: "shop", Service: "seed", Image: "busybox", Created: created,
			State: "Pending", Status: "Pending (unscheduled)", Ready: "0/1"},
	}
	for _, tc := range []struct {
		name, format string
		quiet        bool
		want         []string
	}{
		{"table", "table", false, []string{
			"NAME             IMAGE     SERVICE   CREATED              STATUS                  PORTS",
			"web-5d8f-abcde   nginx     web       About a minute ago   Running (1/1 ready)     80/tcp",
			"seed-xyz         busybox   seed      About a minute ago   Pending (unscheduled)",
		}},
		{"json", "json", false, []string{
			`{"Name":"web-5d8f-abcde","Namespace":"shop","Service":"web","Image":"nginx","Created":`,
			`{"Name":"seed-xyz","Namespace":"shop","Service":"seed","Image":"busybox","Created":`,
		}},
		{"quiet", "table", true, []string{"web-5d8f-abcde", "seed-xyz"}},
		{"template", "{{.Service}} {{.State}}", false, []string{"web Running", "seed Pending"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printPods(&b, pods, tc.format, tc.quiet); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(tc.want), b.String())
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(strings.TrimRight(lines[i], " "), w) {
					t.Errorf("line %d: got %q, want %q", i, lines[i], w)
				}
			}
		})
	}
}
