// Package project loads compose files into the model the rest of berth uses:
// the compose-go project plus the names, labels and hashes that berth derives
// from it. It never touches the host beyond reading the files it is given
// (and, when asked, remembering which inputs passed validation).
package project

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// Options are compose's global flags as given on the command line.
type Options struct {
	Files      []string // -f, in order; empty means COMPOSE_FILE or discovery
	ProjectDir string   // --project-directory
	Name       string   // -p
	Profiles   []string // --profile
	EnvFiles   []string // --env-file
	// Environ is the process environment used for interpolation, COMPOSE_*
	// variables and .env lookups; nil means os.Environ().
	Environ []string
	// WorkDir is the directory the command runs in; "" means os.Getwd().
	WorkDir string
	// The switches of `config` that show the file less processed.
	NoInterpolate    bool // leave ${VAR} as written
	NoNormalize      bool // no default network, build or port normal forms
	NoPathResolution bool // keep relative paths relative
	NoEnvResolution  bool // leave env_file and label_file unread
	NoConsistency    bool // skip the cross-reference checks
	// NameSeparator joins project and service in the names berth makes
	// up: "" is compose v2's "-", "_" compose v1's (--compatibility).
	NameSeparator string
	// CheckedDir, when set, is where Load remembers the inputs compose-go's
	// schema validation accepted, so as not to validate them again.
	CheckedDir string
}

// Project is a loaded compose project.
type Project struct {
	*types.Project
	// NameSeparator is Options.NameSeparator.
	NameSeparator string
}

// Load reads, interpolates, merges, normalises and validates the compose files
// the way docker compose does, and returns the project. Errors name the file
// and line where one is known.
func Load(ctx context.Context, o Options) (_ *Project, err error) {
	// compose-go panics on some malformed files; a panic must end as one
	// line of error like any other bad input, not as a stack trace.
	var files []string
	defer func() {
		if r := recover(); r != nil {
			msg := strings.Join(strings.Fields(fmt.Sprint(r)), " ")
			err = &Error{Msg: fmt.Sprintf("%s: the compose loader failed on this file: %s", strings.Join(files, ", "), msg)}
		}
	}()
	opts, err := prepare(o, &files)
	if err != nil {
		return nil, err
	}
	memoFile, memoKey := checkedKey(o.CheckedDir, o, opts)
	valid := checked(memoFile, memoKey)
	if valid {
		if err := cli.WithLoadOptions(loader.WithSkipValidation)(opts); err != nil {
			return nil, err
		}
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, describe(err, opts.ConfigPaths)
	}
	if !valid {
		rememberChecked(memoFile, memoKey)
	}
	// Uninterpolated values are not yet values: ${TAG} is no image tag.
	if !o.NoConsistency && !o.NoInterpolate {
		if err := validate(p, opts.ConfigPaths); err != nil {
			return nil, err
		}
		if err := p.CheckContainerNameUnicity(); err != nil {
			return nil, describe(err, opts.ConfigPaths)
		}
	}
	if o.NoEnvResolution {
		return &Project{Project: p.WithoutUnnecessaryResources(), NameSeparator: o.NameSeparator}, nil
	}
	p, err = p.WithServicesEnvironmentResolved(true)
	if err != nil {
		return nil, describe(err, opts.ConfigPaths)
	}
	p, err = p.WithServicesLabelsResolved(true)
	if err != nil {
		return nil, describe(err, opts.ConfigPaths)
	}
	p = p.WithoutUnnecessaryResources()
	return &Project{Project: p, NameSeparator: o.NameSeparator}, nil
}

// prepare turns the command line's options into compose-go's, the files
// named, found and checked; files receives the paths for error messages.
func prepare(o Options, files *[]string) (*cli.ProjectOptions, error) {
	env := o.Environ
	if env == nil {
		env = os.Environ()
	}
	wd := o.WorkDir
	if wd == "" {
		var err error
		if wd, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	guard := newFileGuard()
	opts, err := cli.NewProjectOptions(absFiles(o.Files, wd),
		cli.WithWorkingDirectory(absDir(o.ProjectDir, wd)),
		cli.WithEnv(env),
		cli.WithEnv([]string{"PWD=" + wd}),
		// Env files must be set before the dot env is read, or .env is ignored.
		cli.WithEnvFiles(o.EnvFiles...),
		checkEnvFiles,
		cli.WithDotEnv,
		cli.WithConfigFileEnv,
		withDiscovery(wd),
		// The project directory may now be the discovered file's directory:
		// read its .env as compose does.
		cli.WithEnvFiles(o.EnvFiles...),
		checkEnvFiles,
		cli.WithDotEnv,
		cli.WithDefaultProfiles(o.Profiles...),
		cli.WithName(o.Name),
		cli.WithResolvedPaths(!o.NoPathResolution),
		cli.WithInterpolation(!o.NoInterpolate),
		cli.WithNormalization(!o.NoNormalize),
		cli.WithConsistency(!o.NoConsistency),
		cli.WithResourceLoader(guard),
		cli.WithLoadOptions(withPortRangeCheck, guard.withIncludeEnvCheck, func(o *loader.Options) {
			// env_file and label_file are read by Load, once validate has
			// checked that they are bounded regular files.
			o.SkipResolveEnvironment, o.SkipResolveLabels = true, true
		}),
	)
	if err != nil {
		return nil, describe(err, o.Files)
	}
	if len(opts.ConfigPaths) == 0 {
		return nil, fmt.Errorf("no configuration file provided: not found (looked for %s in %s and its parents)",
			strings.Join(cli.DefaultFileNames, ", "), wd)
	}
	*files = opts.ConfigPaths
	guard.addBase(opts.WorkingDir)
	for _, f := range opts.ConfigPaths {
		if f == "-" {
			continue
		}
		if err := checkFile(f); err != nil {
			return nil, &Error{Msg: err.Error(), err: err}
		}
		guard.addBase(filepath.Dir(f))
	}
	return opts, nil
}

// Variables lists the variables the compose files interpolate, with their
// defaults, as `config --variables` shows them. The files are read as
// written: nothing is interpolated.
func Variables(ctx context.Context, o Options) (_ map[string]template.Variable, err error) {
	var files []string
	defer func() {
		if r := recover(); r != nil {
			err = &Error{Msg: fmt.Sprintf("%s: the compose loader failed on this file: %v", strings.Join(files, ", "), r)}
		}
	}()
	o.NoInterpolate = true
	opts, err := prepare(o, &files)
	if err != nil {
		return nil, err
	}
	m, err := opts.LoadModel(ctx)
	if err != nil {
		return nil, describe(err, opts.ConfigPaths)
	}
	return template.ExtractVariables(m, template.DefaultPattern), nil
}

// withDiscovery finds compose.yaml (and its override) in dir or its parents when
// no file was named, as compose does, starting from the command's directory.
func withDiscovery(dir string) cli.ProjectOptionsFn {
	return func(o *cli.ProjectOptions) error {
		if len(o.ConfigPaths) > 0 {
			return nil
		}
		wd := o.WorkingDir
		if wd == "" {
			o.WorkingDir = dir
			defer func() { o.WorkingDir = "" }()
		}
		return cli.WithDefaultConfigPath(o)
	}
}

// absFiles makes relative -f paths relative to wd ("-" is standard input).
func absFiles(files []string, wd string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f
		if f != "-" && !filepath.IsAbs(f) {
			out[i] = filepath.Join(wd, f)
		}
	}
	return out
}

func absDir(dir, wd string) string {
	if dir == "" || filepath.IsAbs(dir) {
		return dir
	}
	return filepath.Join(wd, dir)
}
