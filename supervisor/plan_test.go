package supervisor

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/berthrun/berth/internal/errdefs"
	"github.com/berthrun/berth/project/model"
)

// planModel is db <- web <- proxy (web depends on db, proxy on web), plus a
// worker with no dependencies, each at one replica, configuration hash "h".
func planModel(mut func(m *model.Model)) *model.Model {
	m := &model.Model{Name: "p", Services: []model.Service{
		{Name: "db", Replicas: 1, Hash: "h"},
		{Name: "web", Replicas: 1, Hash: "h", DependsOn: map[string]model.Dependency{"db": {Condition: "service_started", Required: true}}},
		{Name: "proxy", Replicas: 1, Hash: "h", DependsOn: map[string]model.Dependency{"web": {Condition: "service_started", Required: true}}},
		{Name: "worker", Replicas: 1, Hash: "h"},
	}}
	if mut != nil {
		mut(m)
	}
	return m
}

// rec is replica n of service, current unless hash or image say otherwise;
// its ID is "service-n".
func rec(service string, n int, hashAndImage ...string) Record {
	r := Record{ID: fmt.Sprintf("%s-%d", service, n), Service: service, Number: n, Hash: "h", ImageID: "img"}
	if len(hashAndImage) > 0 {
		r.Hash = hashAndImage[0]
	}
	if len(hashAndImage) > 1 {
		r.ImageID = hashAndImage[1]
	}
	return r
}

// current is one up-to-date replica of every service of planModel.
func current() []Record {
	return []Record{rec("db", 1), rec("web", 1), rec("proxy", 1), rec("worker", 1)}
}

// describePlan renders a service's plan as "-removed... n:action... [nostart] [restart]".
func describePlan(sp servicePlan) string {
	var parts []string
	for _, id := range sp.Remove {
		parts = append(parts, "-"+id)
	}
	for _, r := range sp.Replicas {
		parts = append(parts, fmt.Sprintf("%d:%s", r.Number, r.Action))
	}
	if !sp.Start {
		parts = append(parts, "nostart")
	}
	if sp.Restart {
		parts = append(parts, "restart")
	}
	return strings.Join(parts, " ")
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mut     func(m *model.Model)
		recs    []Record
		req     UpRequest
		images  map[string]string // image IDs other than "img"
		targets []string
		want    map[string]string // service: describePlan; services absent are not planned
		orphans []string
	}{
		{
			name:    "first up creates everything",
			targets: []string{"db", "proxy", "web", "worker"},
			want:    map[string]string{"db": "1:create", "web": "1:create", "proxy": "1:create", "worker": "1:create"},
		},
		{
			name:    "second up keeps everything",
			recs:    current(),
			targets: []string{"db", "proxy", "web", "worker"},
			want:    map[string]string{"db": "1:keep", "web": "1:keep", "proxy": "1:keep", "worker": "1:keep"},
		},
		{
			name:    "changed configuration recreates",
			recs:    []Record{rec("db", 1), rec("web", 1, "old"), rec("proxy", 1), rec("worker", 1)},
			targets: []string{"db", "proxy", "web", "worker"},
			want:    map[string]string{"db": "1:keep", "web": "1:recreate", "proxy": "1:keep", "worker": "1:keep"},
		},
		{
			name:    "changed image recreates",
			recs:    current(),
			images:  map[string]string{"worker": "new"},
			targets: []string{"db", "proxy", "web", "worker"},
			want:    map[string]string{"db": "1:keep", "web": "1:keep", "proxy": "1:keep", "worker": "1:recreate"},
		},
		{
			name:    "--no-recreate keeps what diverged",
			recs:    []Record{rec("db", 1, "old"), rec("web", 1), rec("proxy", 1), rec("worker", 1, "h", "old")},
			req:     UpRequest{NoRecreate: true},
			targets: []string{"db", "proxy", "web", "worker"},
			want:    map[string]string{"db": "1:keep", "web": "1:keep", "proxy": "1:keep", "worker": "1:keep"},
		},
		{
			name:    "--force-recreate recreates all when no service is named",
			recs:    current(),
			req:     UpRequest{ForceRecreate: true},
			targets: []string{"db", "proxy", "web", "worker"},
			want:    map[string]string{"db": "1:recreate", "web": "1:recreate", "proxy": "1:recreate", "worker": "1:recreate"},
		},
		{
			name:    "--force-recreate of a named service leaves its dependencies",
			recs:    current(),
			req:     UpRequest{Services: []string{"web"}, ForceRecreate: true},
			targets: []string{"db", "web"},
			want:    map[string]string{"db": "1:keep", "web": "1:recreate"},
		},
		{
			name:    "--always-recreate-deps recreates the dependencies only",
			recs:    current(),
			req:     UpRequest{Services: []string{"proxy"}, AlwaysRecreateDeps: true},
			targets: []string{"db", "proxy", "web"},
			want:    map[string]string{"db": "1:recreate", "web": "1:recreate", "proxy": "1:keep"},
		},
		{
			name:    "--no-deps converges the named service alone",
			recs:    current(),
			req:     UpRequest{Services: []string{"proxy"}, NoDeps: true},
			targets: []string{"proxy"},
			want:    map[string]string{"proxy": "1:keep"},
		},
		{
			name:    "--no-start creates without starting",
			req:     UpRequest{Services: []string{"worker"}, NoStart: true},
			targets: []string{"worker"},
			want:    map[string]string{"worker": "1:create nostart"},
		},
		{
			name: "scale up takes the lowest free numbers",
			mut:  func(m *model.Model) { m.Services[3].Replicas = 4 },
			recs: []Record{rec("worker", 2), rec("worker", 4)},
			req:  UpRequest{Services: []string{"worker"}},
			// Replica 4 is kept: numbers are never reused while they live.
			targets: []string{"worker"},
			want:    map[string]string{"worker": "1:create 2:keep 3:create 4:keep"},
		},
		{
			name:    "scale down removes the highest numbers",
			mut:     func(m *model.Model) { m.Services[3].Replicas = 2 },
			recs:    []Record{rec("worker", 1), rec("worker", 2), rec("worker", 3), rec("worker", 4)},
			req:     UpRequest{Services: []string{"worker"}},
			targets: []string{"worker"},
			want:    map[string]string{"worker": "-worker-4 -worker-3 1:keep 2:keep"},
		},
		{
			name:    "scale down removes out-of-date replicas first",
			mut:     func(m *model.Model) { m.Services[3].Replicas = 2 },
			recs:    []Record{rec("worker", 1, "old"), rec("worker", 2), rec("worker", 3), rec("worker", 4, "old")},
			req:     UpRequest{Services: []string{"worker"}},
			targets: []string{"worker"},
			want:    map[string]string{"worker": "-worker-4 -worker-1 2:keep 3:keep"},
		},
		{
			name:    "scale down and recreate what stays out of date",
			mut:     func(m *model.Model) { m.Services[3].Replicas = 2 },
			recs:    []Record{rec("worker", 1, "old"), rec("worker", 2, "old"), rec("worker", 3)},
			req:     UpRequest{Services: []string{"worker"}},
			targets: []string{"worker"},
			want:    map[string]string{"worker": "-worker-2 1:recreate 3:keep"},
		},
		{
			name:    "scale to zero",
			mut:     func(m *model.Model) { m.Services[3].Replicas = 0 },
			recs:    []Record{rec("worker", 1), rec("worker", 2)},
			req:     UpRequest{Services: []string{"worker"}},
			targets: []string{"worker"},
			want:    map[string]string{"worker": "-worker-2 -worker-1"},
		},
		{
			name:    "containers of services not in the model are orphans",
			recs:    append(current(), rec("gone", 1), rec("gone", 2)),
			req:     UpRequest{Services: []string{"worker"}, RemoveOrphans: true},
			targets: []string{"worker"},
			want:    map[string]string{"worker": "1:keep"},
			orphans: []string{"gone-1", "gone-2"},
		},
		{
			name: "depends_on.restart restarts the dependent of a recreated dependency",
			mut: func(m *model.Model) {
				m.Services[1].DependsOn["db"] = model.Dependency{Condition: "service_started", Required: true, Restart: true}
			},
			recs:    []Record{rec("db", 1, "old"), rec("web", 1), rec("proxy", 1), rec("worker", 1)},
			targets: []string{"db", "proxy", "web", "worker"},
			// proxy depends on web without restart, and web is kept.
			want: map[string]string{"db": "1:recreate", "web": "1:keep restart", "proxy": "1:keep", "worker": "1:keep"},
		},
		{
			name: "depends_on.restart: nothing to restart when the dependency is kept",
			mut: func(m *model.Model) {
				m.Services[1].DependsOn["db"] = model.Dependency{Condition: "service_started", Required: true, Restart: true}
			},
			recs:    current(),
			targets: []string{"db", "proxy", "web", "worker"},
			want:    map[string]string{"db": "1:keep", "web": "1:keep", "proxy": "1:keep", "worker": "1:keep"},
		},
		{
			name:    "without depends_on.restart a recreated dependency restarts nothing",
			recs:    []Record{rec("db", 1, "old"), rec("web", 1), rec("proxy", 1), rec("worker", 1)},
			targets: []string{"db", "proxy", "web", "worker"},
			want:    map[string]string{"db": "1:recreate", "web": "1:keep", "proxy": "1:keep", "worker": "1:keep"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := planModel(tc.mut)
			targets, g, err := upTargets(m, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(targets)
			if !slices.Equal(targets, tc.targets) {
				t.Fatalf("targets %v, want %v", targets, tc.targets)
			}
			images := map[string]string{}
			for _, s := range targets {
				images[s] = "img"
			}
			for s, id := range tc.images {
				images[s] = id
			}
			p := plan(m, g, targets, images, tc.recs, tc.req)
			got := map[string]string{}
			for s, sp := range p.Services {
				got[s] = describePlan(sp)
			}
			for s, want := range tc.want {
				if got[s] != want {
					t.Errorf("%s: %q, want %q", s, got[s], want)
				}
			}
			for s := range got {
				if _, ok := tc.want[s]; !ok {
					t.Errorf("%s planned (%q) but not a target", s, got[s])
				}
			}
			slices.Sort(p.Orphans)
			if !slices.Equal(p.Orphans, tc.orphans) {
				t.Errorf("orphans %v, want %v", p.Orphans, tc.orphans)
			}
			if p.RemoveOrphans != tc.req.RemoveOrphans {
				t.Errorf("RemoveOrphans %v", p.RemoveOrphans)
			}
		})
	}
}

func TestUpTargetsUnknownService(t *testing.T) {
	if _, _, err := upTargets(planModel(nil), UpRequest{Services: []string{"nope"}}); !errdefs.IsNotFound(err) {
		t.Fatalf("got %v", err)
	}
}
