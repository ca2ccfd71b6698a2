package cli

import (
	"context"
	"os"

	"github.com/berthrun/berth/project"
)

// load reads the compose project that the global flags point at.
func (g *globals) load(ctx context.Context) (*project.Project, error) {
	return project.Load(ctx, project.Options{
		Files:      g.files,
		ProjectDir: g.projectDir,
		Name:       g.name,
		Profiles:   g.profiles,
		EnvFiles:   g.envFiles,
	})
}

// createOutput opens the file given with -o for writing.
func createOutput(path string) (*os.File, error) {
	return os.Create(path)
}
