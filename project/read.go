package project

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/interpolation"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/tree"
)

// MaxFileSize bounds every compose file berth reads, included or extended
// ones too, and services' env_file and label_file: compose-go reads a whole
// file into memory, and a path such as /dev/zero would never end.
const MaxFileSize = 16 << 20

// checkFile refuses a compose file that is not a regular file or is larger
// than MaxFileSize, before anything reads it.
func checkFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil // compose-go reports a missing file in its own words
	}
	switch {
	case fi.IsDir():
		return nil // likewise "is a directory"
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file (compose, env and label files must be)", path)
	case fi.Size() > MaxFileSize:
		return fmt.Errorf("%s: %d bytes is larger than the %d MiB berth reads from a compose, env or label file", path, fi.Size(), MaxFileSize>>20)
	}
	return nil
}

// fileGuard stands before compose-go's local loader for include and
// extends paths. compose-go asks every loader whether it takes a path; the
// guard takes only paths that checkFile refuses, and then refuses them in
// Load, so that good paths go on to be resolved and read by compose-go
// itself. Relative paths are resolved against every directory a compose file
// of this load came from, which covers compose's rule (relative to the
// including file's project directory) and errs only towards refusing.
type fileGuard struct {
	mu    sync.Mutex
	bases []string
	bad   map[string]error
}

func newFileGuard(dirs ...string) *fileGuard {
	return &fileGuard{bases: dirs, bad: map[string]error{}}
}

func (g *fileGuard) Accept(p string) bool {
	if strings.Contains(p, "://") {
		return false // a remote resource: not berth's to read
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	cands := g.candidates(p)
	for _, c := range cands {
		if err := checkFile(c); err != nil {
			g.bad[p] = err
			return true
		}
	}
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			g.addBase(filepath.Dir(c))
		}
	}
	return false
}

// candidates are the files a path may name: itself when absolute, else
// joined to every base. g.mu is held.
func (g *fileGuard) candidates(p string) []string {
	if filepath.IsAbs(p) {
		return []string{p}
	}
	var out []string
	for _, b := range g.bases {
		out = append(out, filepath.Join(b, p))
	}
	return out
}

func (g *fileGuard) addBase(dir string) {
	for _, b := range g.bases {
		if b == dir {
			return
		}
	}
	g.bases = append(g.bases, dir)
}

func (g *fileGuard) Load(_ context.Context, p string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.bad[p]; err != nil {
		return "", err
	}
	return p, nil
}

func (g *fileGuard) Dir(p string) string { return filepath.Dir(p) }

// withPortRangeCheck refuses a published port range larger than
// maxPortRange while compose-go interpolates the file, before it expands
// the range into one entry per port.
func withPortRangeCheck(o *loader.Options) {
	if o.Interpolate == nil {
		return
	}
	casts := make(map[tree.Path]interpolation.Cast, len(o.Interpolate.TypeCastMapping)+2)
	for k, v := range o.Interpolate.TypeCastMapping {
		casts[k] = v
	}
	casts[tree.NewPath("services", tree.PathMatchAll, "ports", tree.PathMatchList)] = checkPortSpec
	casts[tree.NewPath("services", tree.PathMatchAll, "ports", tree.PathMatchList, "published")] = checkPortSpec
	o.Interpolate.TypeCastMapping = casts
}

// checkPortSpec looks at every range in a port entry ("[ip:]a-b:c-d/proto")
// and leaves the value as it is.
func checkPortSpec(v string) (any, error) {
	spec, _, _ := strings.Cut(v, "/")
	for _, part := range strings.Split(spec, ":") {
		if strings.Contains(part, "-") && !strings.ContainsAny(part, ".[]") {
			if _, err := portRangeSize(part); err != nil {
				return nil, fmt.Errorf("port %q: %v", v, err)
			}
		}
	}
	return v, nil
}

// checkEnvFiles bounds the .env and --env-file files before compose-go reads
// them. /dev/null is the usual way to name no file, and reads empty.
func checkEnvFiles(o *cli.ProjectOptions) error {
	for _, f := range o.EnvFiles {
		if f == os.DevNull {
			continue
		}
		if err := checkFile(f); err != nil {
			return err
		}
	}
	return nil
}

// withIncludeEnvCheck bounds an include's env_file, which compose-go reads
// while it includes: its value is checked when it is interpolated, against
// every directory of the load as include paths are.
func (g *fileGuard) withIncludeEnvCheck(o *loader.Options) {
	if o.Interpolate == nil {
		return
	}
	check := func(v string) (any, error) {
		if v == os.DevNull {
			return v, nil
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, c := range g.candidates(v) {
			if err := checkFile(c); err != nil {
				return nil, err
			}
		}
		return v, nil
	}
	casts := make(map[tree.Path]interpolation.Cast, len(o.Interpolate.TypeCastMapping)+2)
	for k, v := range o.Interpolate.TypeCastMapping {
		casts[k] = v
	}
	casts[tree.NewPath("include", tree.PathMatchList, "env_file")] = check
	casts[tree.NewPath("include", tree.PathMatchList, "env_file", tree.PathMatchList)] = check
	o.Interpolate.TypeCastMapping = casts
}
