package supervisor

import (
	"cmp"
	"slices"

	"github.com/berthrun/berth/graph"
	"github.com/berthrun/berth/internal/errdefs"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/scale"
)

// upPlan is what an up does to the project's containers, decided from the
// model and the records before anything is done: which containers are
// created, recreated, kept, started or removed. up executes it service by
// service in dependency order (up.go); planning itself is pure, so
// that it is tested without root (plan_test.go).
type upPlan struct {
	// Targets are the services to converge: those asked for and, unless
	// NoDeps, their dependencies; all when none were asked for.
	Targets []string
	// Orphans are the containers (IDs) of services not in the model;
	// RemoveOrphans says whether up removes them or only warns.
	Orphans       []string
	RemoveOrphans bool
	Services      map[string]servicePlan
}

// servicePlan is what happens to one service's containers.
type servicePlan struct {
	// Remove are the replicas (IDs) a scale-down removes: out-of-date
	// ones first, then the highest numbers.
	Remove []string
	// Replicas are the replicas that remain, by ascending number.
	Replicas []replicaPlan
	// Start says the replicas are started (false with --no-start).
	Start bool
	// Restart says running replicas that are kept are restarted: a
	// dependency with depends_on.restart is recreated by this up.
	Restart bool
}

// Recreates reports whether the plan replaces any existing container.
func (p servicePlan) Recreates() bool {
	for _, r := range p.Replicas {
		if r.Action == recreateReplica {
			return true
		}
	}
	return false
}

// replicaAction is what becomes of one replica number.
type replicaAction int

const (
	// keepReplica: the existing container stays as it is.
	keepReplica replicaAction = iota
	// createReplica: no container has this number; one is created.
	createReplica
	// recreateReplica: the existing container is removed and a new one created
	// (out of date, or forced).
	recreateReplica
)

func (a replicaAction) String() string {
	return [...]string{"keep", "create", "recreate"}[a]
}

// replicaPlan is one replica number of a service.
type replicaPlan struct {
	Number int
	Action replicaAction
	// ID is the existing container's (keepReplica, recreateReplica).
	ID string
}

// upTargets checks the services req names and returns those up converges
// with the depends_on graph of m.
func upTargets(m *model.Model, req UpRequest) ([]string, *graph.Graph, error) {
	g, err := modelGraph(m)
	if err != nil {
		return nil, nil, err
	}
	if len(req.Services) == 0 {
		return m.ServiceNames(), g, nil
	}
	for _, name := range req.Services {
		if _, ok := m.Service(name); !ok {
			return nil, nil, errdefs.Errorf(errdefs.ErrNotFound, "no such service: %s", name)
		}
	}
	if req.NoDeps {
		return req.Services, g, nil
	}
	return g.Closure(req.Services, false), g, nil
}

// plan decides what up does to the containers of targets, given the model
// (replicas already scaled as asked), the image ID each target's image
// resolves to, and the project's records. A container is out of date when
// its configuration hash or image differs from the service's.
func plan(m *model.Model, g *graph.Graph, targets []string, imageIDs map[string]string, recs []Record, req UpRequest) upPlan {
	p := upPlan{Targets: targets, RemoveOrphans: req.RemoveOrphans, Services: map[string]servicePlan{}}
	byService := map[string][]Record{}
	for _, r := range recs {
		if _, ok := m.Service(r.Service); !ok {
			p.Orphans = append(p.Orphans, r.ID)
			continue
		}
		byService[r.Service] = append(byService[r.Service], r)
	}
	asked := map[string]bool{}
	for _, n := range req.Services {
		asked[n] = true
	}
	inTargets := map[string]bool{}
	for _, t := range targets {
		inTargets[t] = true
	}
	// Dependencies are planned first, so that a dependent sees whether
	// its dependencies are recreated (depends_on.restart).
	var visit func(name string)
	visit = func(name string) {
		if _, done := p.Services[name]; done || !inTargets[name] {
			return
		}
		for _, dep := range g.Dependencies(name) {
			visit(dep)
		}
		svc, _ := m.Service(name)
		// --force-recreate is for the services asked for (all when none
		// were named); their dependencies only with
		// --always-recreate-deps.
		force := req.ForceRecreate && (len(asked) == 0 || asked[name]) ||
			req.AlwaysRecreateDeps && len(asked) > 0 && !asked[name]
		var existing []scale.Replica
		for _, r := range byService[name] {
			stale := r.Hash != svc.Hash || r.ImageID != imageIDs[name]
			existing = append(existing, scale.Replica{ID: r.ID, Number: r.Number, Stale: stale})
		}
		keep, remove, create := scale.Replicas(existing, svc.Replicas)
		sp := servicePlan{Start: !req.NoStart}
		for _, r := range remove {
			sp.Remove = append(sp.Remove, r.ID)
		}
		for _, r := range keep {
			rp := replicaPlan{Number: r.Number, Action: keepReplica, ID: r.ID}
			if force || (r.Stale && !req.NoRecreate) {
				rp.Action = recreateReplica
			}
			sp.Replicas = append(sp.Replicas, rp)
		}
		for _, n := range create {
			sp.Replicas = append(sp.Replicas, replicaPlan{Number: n, Action: createReplica})
		}
		slices.SortFunc(sp.Replicas, func(a, b replicaPlan) int { return cmp.Compare(a.Number, b.Number) })
		for dep, d := range svc.DependsOn {
			if d.Restart && p.Services[dep].Recreates() {
				sp.Restart = true
			}
		}
		p.Services[name] = sp
	}
	for _, name := range targets {
		visit(name)
	}
	return p
}

// modelGraph is the depends_on graph of the model's services.
func modelGraph(m *model.Model) (*graph.Graph, error) {
	deps := map[string][]string{}
	names := m.ServiceNames()
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	for _, svc := range m.Services {
		for dep, d := range svc.DependsOn {
			if known[dep] || d.Required {
				deps[svc.Name] = append(deps[svc.Name], dep)
			}
		}
	}
	return graph.New(names, deps)
}
