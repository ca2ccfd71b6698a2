package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berthrun/berth/project"
	"github.com/berthrun/berth/project/model"
)

// load reads the compose project that the global flags point at.
func (g *globals) load(ctx context.Context) (*project.Project, error) {
	return g.loadWith(ctx, project.Options{})
}

// loadNamed is load for a command given services by name: a service whose
// profile is not active is enabled by being named, as with compose (the
// project is loaded again with its profiles, so that its networks and
// volumes are part of it too).
func (g *globals) loadNamed(ctx context.Context, names []string) (*project.Project, error) {
	p, err := g.load(ctx)
	if err != nil {
		return nil, err
	}
	profiles := append([]string{}, g.profiles...)
	for _, n := range names {
		if svc, off := p.DisabledServices[n]; off {
			profiles = append(profiles, svc.Profiles...)
		}
	}
	if len(profiles) == len(g.profiles) {
		return p, nil
	}
	withProfiles := *g
	withProfiles.profiles = profiles
	return withProfiles.load(ctx)
}

// loadWith is load with config's switches set in o.
func (g *globals) loadWith(ctx context.Context, o project.Options) (*project.Project, error) {
	o.Files, o.ProjectDir, o.Name, o.Profiles, o.EnvFiles = g.files, g.projectDir, g.name, g.profiles, g.envFiles
	if g.compatibility {
		o.NameSeparator = "_"
	}
	if !g.dryRun {
		// A dry run writes nothing, not even this cache.
		o.CheckedDir = filepath.Join(g.root, "compose", "checked")
	}
	return project.Load(ctx, o)
}

// createOutput opens the file given with -o for writing.
func createOutput(path string) (*os.File, error) {
	return os.Create(path)
}

// checkServices refuses service names the project does not define, when
// the compose file could be loaded.
func checkServices(p *project.Project, services []string) error {
	if p == nil {
		return nil
	}
	for _, s := range services {
		if _, ok := p.Services[s]; !ok {
			return fmt.Errorf("no such service: %s", s)
		}
	}
	return nil
}

// model turns the project into what the supervisor runs, with the global
// flags that shape it (--compatibility's v1 container names).
func (g *globals) model(p *project.Project) (*model.Model, error) {
	m, err := p.Model()
	if err != nil {
		return nil, err
	}
	if g.compatibility {
		for i := range m.Services {
			m.Services[i].NameSeparator = "_"
		}
	}
	return m, nil
}
