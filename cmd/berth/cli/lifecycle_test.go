package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/berthrun/berth/supervisor"
)

func TestRemovableAndServicesIn(t *testing.T) {
	rec := func(name, service, status string) supervisor.Record {
		r := supervisor.Record{Name: name, Service: service}
		r.State.Status = status
		return r
	}
	recs := []supervisor.Record{
		rec("p-web-1", "web", supervisor.StatusRunning),
		rec("p-web-2", "web", supervisor.StatusExited),
		rec("p-db-1", "db", supervisor.StatusPaused),
		rec("p-old-1", "old", supervisor.StatusCreated),
	}
	for _, tc := range []struct {
		name     string
		services []string
		stop     bool
		want     []string
	}{
		{"stopped only", nil, false, []string{"p-web-2", "p-old-1"}},
		{"with --stop", nil, true, []string{"p-web-1", "p-web-2", "p-db-1", "p-old-1"}},
		{"one service", []string{"web"}, false, []string{"p-web-2"}},
		{"running service", []string{"db"}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := removable(recs, tc.services, tc.stop); !slices.Equal(got, tc.want) {
				t.Errorf("removable = %v, want %v", got, tc.want)
			}
		})
	}
	if got := servicesIn(recs, []string{"web", "db", "absent"}); !slices.Equal(got, []string{"web", "db"}) {
		t.Errorf("servicesIn = %v", got)
	}
}

func TestConfirmed(t *testing.T) {
	for in, want := range map[string]bool{"y\n": true, "YES\n": true, " y ": true, "": false, "n\n": false, "yep\n": false} {
		if got := confirmed(strings.NewReader(in)); got != want {
			t.Errorf("confirmed(%q) = %v, want %v", in, got, want)
		}
	}
}
