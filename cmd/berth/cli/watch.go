package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/fsnotify/fsnotify"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/internal/tarcp"
	"github.com/berthrun/berth/project"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

// quietPeriod is how long the tree must stay still before a batch of
// changes is acted on: an editor's save or a git checkout is many events,
// and one sync (or one rebuild) should follow it, not many.
const quietPeriod = 200 * time.Millisecond

// defaultIgnores are never worth a sync: version control and the
// temporary files editors write beside the file they save.
var defaultIgnores = []string{".git", "**/.git", "*~", "**/*~", "*.swp", "**/*.swp", "*.swx", "**/*.swx", "4913", "**/4913"}

type watchFlags struct {
	noUp, prune, quiet bool
}

func newWatchCommand(g *globals) *cobra.Command {
	f := &watchFlags{}
	cmd := &cobra.Command{
		Use:   "watch [SERVICE...]",
		Short: "Watch build context for service and rebuild/refresh containers when files are updated",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cmd.SetContext(ctx)
			return runWatch(cmd, g, f, args)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.noUp, "no-up", false, "Do not build & start services before watching")
	fl.BoolVar(&f.prune, "prune", true, "Prune dangling images on rebuild")
	fl.BoolVar(&f.quiet, "quiet", false, "hide build output")
	return cmd
}

func runWatch(cmd *cobra.Command, g *globals, f *watchFlags, services []string) error {
	ctx := cmd.Context()
	p, err := g.load(ctx)
	if err != nil {
		return err
	}
	if err := checkServices(p, services); err != nil {
		return err
	}
	w, err := newWatcher(cmd, g, p, services, f)
	if err != nil {
		return err
	}
	if !f.noUp {
		if err := runUp(cmd, g, &upFlags{detach: true}, services); err != nil {
			return err
		}
	}
	err = w.run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// trigger is one develop.watch rule of a service, its patterns compiled.
type trigger struct {
	types.Trigger
	service string
	ignore  *patternmatcher.PatternMatcher // relative to Path
	include *patternmatcher.PatternMatcher // relative to Path; nil: everything
	// context and dockerignore: .dockerignore of the service's build
	// context, matched relative to it.
	context      string
	dockerignore *patternmatcher.PatternMatcher
}

// match tells whether the host path abs concerns t, and its path relative
// to t.Path ("." for Path itself). Include patterns name files: a
// directory (dir) is only subject to the ignores.
func (t *trigger) match(abs string, dir bool) (string, bool) {
	rel, err := filepath.Rel(t.Path, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	rel = filepath.ToSlash(rel)
	if rel != "." {
		if ok, _ := t.ignore.MatchesOrParentMatches(rel); ok {
			return "", false
		}
		if t.include != nil && !dir {
			ok, _ := t.include.MatchesOrParentMatches(rel)
			if base, _ := t.include.MatchesOrParentMatches(path.Base(rel)); !ok && !base {
				return "", false
			}
		}
	}
	if t.dockerignore != nil {
		if crel, err := filepath.Rel(t.context, abs); err == nil && crel != "." && !strings.HasPrefix(crel, "..") {
			if ok, _ := t.dockerignore.MatchesOrParentMatches(filepath.ToSlash(crel)); ok {
				return "", false
			}
		}
	}
	return rel, true
}

// watcher follows the host trees the triggers name and applies their
// actions to the project's running containers.
type watcher struct {
	cmd      *cobra.Command
	g        *globals
	p        *project.Project
	f        *watchFlags
	triggers []*trigger
	out      io.Writer
}

func newWatcher(cmd *cobra.Command, g *globals, p *project.Project, services []string, f *watchFlags) (*watcher, error) {
	if len(services) == 0 {
		services = p.ServiceNames()
	}
	sort.Strings(services)
	w := &watcher{cmd: cmd, g: g, p: p, f: f, out: cmd.OutOrStdout()}
	for _, name := range services {
		svc := p.Services[name]
		if svc.Develop == nil {
			continue
		}
		var dockerignore *patternmatcher.PatternMatcher
		var context string
		if svc.Build != nil {
			context = svc.Build.Context
			var err error
			if dockerignore, err = readDockerignore(context, svc.Build.Dockerfile); err != nil {
				return nil, err
			}
		}
		for _, tr := range svc.Develop.Watch {
			t := &trigger{Trigger: tr, service: name, context: context, dockerignore: dockerignore}
			switch tr.Action {
			case types.WatchActionSync, types.WatchActionSyncRestart, types.WatchActionSyncExec:
				if tr.Target == "" {
					return nil, fmt.Errorf("services.%s.develop.watch: target is required for action %q", name, tr.Action)
				}
			case types.WatchActionRebuild:
				if svc.Build == nil {
					return nil, fmt.Errorf("can't watch service %q with action %s without a build context", name, tr.Action)
				}
			case types.WatchActionRestart:
			default:
				return nil, fmt.Errorf("services.%s.develop.watch: unsupported action %q", name, tr.Action)
			}
			if tr.Action == types.WatchActionSyncExec && len(tr.Exec.Command) == 0 {
				return nil, fmt.Errorf("services.%s.develop.watch: exec.command is required for action %q", name, tr.Action)
			}
			if !filepath.IsAbs(t.Path) {
				t.Path = filepath.Join(p.WorkingDir, t.Path)
			}
			t.Path = filepath.Clean(t.Path)
			var err error
			if t.ignore, err = patternmatcher.New(append(append([]string{}, defaultIgnores...), tr.Ignore...)); err != nil {
				return nil, fmt.Errorf("services.%s.develop.watch: %w", name, err)
			}
			if len(tr.Include) > 0 {
				if t.include, err = patternmatcher.New(tr.Include); err != nil {
					return nil, fmt.Errorf("services.%s.develop.watch: %w", name, err)
				}
			}
			w.triggers = append(w.triggers, t)
		}
	}
	if len(w.triggers) == 0 {
		return nil, errors.New("none of the selected services is configured for watch, consider setting a 'develop' section")
	}
	return w, nil
}

// readDockerignore reads <Dockerfile>.dockerignore, else .dockerignore in
// the build context, as the builder does.
func readDockerignore(context, dockerfile string) (*patternmatcher.PatternMatcher, error) {
	var candidates []string
	if dockerfile != "" {
		if !filepath.IsAbs(dockerfile) {
			dockerfile = filepath.Join(context, dockerfile)
		}
		candidates = append(candidates, dockerfile+".dockerignore")
	}
	for _, c := range append(candidates, filepath.Join(context, ".dockerignore")) {
		fh, err := os.Open(c)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		patterns, err := ignorefile.ReadAll(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		return patternmatcher.New(patterns)
	}
	return nil, nil
}

// addTree watches dir and every directory under it that no trigger
// ignores; inotify is not recursive.
func (w *watcher) addTree(fsw *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && !w.wanted(p, true) {
			return filepath.SkipDir
		}
		if err := fsw.Add(p); err != nil {
			return fmt.Errorf("watching %s: %w", p, err)
		}
		return nil
	})
}

// wanted tells whether some trigger cares about the host path.
func (w *watcher) wanted(abs string, dir bool) bool {
	for _, t := range w.triggers {
		if _, ok := t.match(abs, dir); ok {
			return true
		}
	}
	return false
}

func (w *watcher) run(ctx context.Context) error {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching files: %w", err)
	}
	defer fsw.Close()
	for _, t := range w.triggers {
		fi, err := os.Stat(t.Path)
		switch {
		case err != nil:
			return fmt.Errorf("watching service %q: %w", t.service, err)
		case fi.IsDir():
			err = w.addTree(fsw, t.Path)
		default:
			// A file is replaced, not written, by many editors: watch
			// its directory to see the new one.
			err = fsw.Add(filepath.Dir(t.Path))
		}
		if err != nil {
			return err
		}
	}
	for _, t := range w.triggers {
		if t.InitialSync && isSync(t.Action) {
			if err := w.apply(ctx, map[string]bool{t.Path: true}); err != nil {
				fmt.Fprintf(w.cmd.ErrOrStderr(), "Error: %v\n", err)
			}
		}
	}
	fmt.Fprintln(w.out, "Watch enabled")

	pending := map[string]bool{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err, ok := <-fsw.Errors:
			if !ok {
				return nil
			}
			return fmt.Errorf("watching files: %w", err)
		case ev, ok := <-fsw.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Create) {
				continue
			}
			fi, err := os.Lstat(ev.Name)
			isDir := err == nil && fi.IsDir()
			if !w.wanted(ev.Name, isDir) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if isDir {
					// Files made in it before the watch was added are
					// found by the sync's walk of the directory.
					if err := w.addTree(fsw, ev.Name); err != nil {
						fmt.Fprintf(w.cmd.ErrOrStderr(), "Error: %v\n", err)
					}
				}
			}
			pending[ev.Name] = true
			timer.Reset(quietPeriod)
		case <-timer.C:
			batch := pending
			pending = map[string]bool{}
			if err := w.apply(ctx, batch); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// One failed sync or build must not end the dev loop:
				// the next save may fix it.
				fmt.Fprintf(w.cmd.ErrOrStderr(), "Error: %v\n", err)
			}
		}
	}
}

func isSync(a types.WatchAction) bool {
	return a == types.WatchActionSync || a == types.WatchActionSyncRestart || a == types.WatchActionSyncExec
}

// change is what one trigger has to do about a batch.
type change struct {
	t    *trigger
	rels []string
}

// apply acts on a batch of changed host paths, service by service: a
// rebuild trigger wins over the service's syncs (the new image has the
// files), else the syncs run, then the restart or exec they ask for.
func (w *watcher) apply(ctx context.Context, batch map[string]bool) error {
	paths := make([]string, 0, len(batch))
	for p := range batch {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var order []string
	byService := map[string][]*change{}
	for _, t := range w.triggers {
		c := &change{t: t}
		for _, p := range paths {
			fi, err := os.Lstat(p)
			if rel, ok := t.match(p, err == nil && fi.IsDir()); ok {
				c.rels = append(c.rels, rel)
			}
		}
		if len(c.rels) == 0 {
			continue
		}
		if _, ok := byService[t.service]; !ok {
			order = append(order, t.service)
		}
		byService[t.service] = append(byService[t.service], c)
	}
	var errs []error
	for _, svc := range order {
		if err := w.applyService(ctx, svc, byService[svc]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *watcher) applyService(ctx context.Context, svc string, changes []*change) error {
	for _, c := range changes {
		if c.t.Action == types.WatchActionRebuild {
			return w.rebuild(ctx, svc)
		}
	}
	c, err := supervisor.Connect(ctx, w.g.paths(), w.p.Name)
	if err != nil {
		return err
	}
	targets, err := w.containers(ctx, c, svc)
	if err != nil {
		return err
	}
	restart := false
	var execs []types.ServiceHook
	for _, ch := range changes {
		if isSync(ch.t.Action) {
			n := len(ch.rels)
			fmt.Fprintf(w.out, "Syncing service %q after %d changes were detected\n", svc, n)
			for _, r := range targets {
				if err := syncInto(ctx, c, r, ch); err != nil {
					return fmt.Errorf("syncing service %q: %w", svc, err)
				}
			}
		}
		switch ch.t.Action {
		case types.WatchActionSyncRestart, types.WatchActionRestart:
			restart = true
		case types.WatchActionSyncExec:
			execs = append(execs, ch.t.Exec)
		}
	}
	if restart {
		fmt.Fprintf(w.out, "Restarting service %q after changes were detected\n", svc)
		if err := withSteps(w.cmd.ErrOrStderr(), func(progress func(supervisor.Event)) error {
			return c.Containers(ctx, "restart", supervisor.ContainersRequest{Services: []string{svc}}, progress)
		}); err != nil {
			return err
		}
	}
	for _, hook := range execs {
		for _, r := range targets {
			req := supervisor.ExecRequest{Container: r.ID, Args: hook.Command, User: hook.User, Workdir: hook.WorkingDir}
			for k, v := range hook.Environment {
				if v != nil {
					req.Env = append(req.Env, k+"="+*v)
				}
			}
			code, err := c.Exec(ctx, req, supervisor.ExecIO{Stdout: w.out, Stderr: w.cmd.ErrOrStderr()})
			if err != nil {
				return fmt.Errorf("exec in %s: %w", r.Name, err)
			}
			if code != 0 {
				return fmt.Errorf("exec in %s: exit code %d", r.Name, code)
			}
		}
	}
	return nil
}

// containers are the service's running containers (not one-off ones).
func (w *watcher) containers(ctx context.Context, c *supervisor.Client, svc string) ([]supervisor.Record, error) {
	recs, err := c.Ps(ctx)
	if err != nil {
		return nil, err
	}
	var out []supervisor.Record
	for _, r := range recs {
		if r.Service == svc && r.Labels[model.LabelOneoff] != "True" && r.State.Status == supervisor.StatusRunning {
			out = append(out, r)
		}
	}
	return out, nil
}

// syncInto copies what changed under the trigger's path into one
// container, the way cp does (through the supervisor, the paths resolved
// inside the container), and removes there what was removed here.
func syncInto(ctx context.Context, c *supervisor.Client, r supervisor.Record, ch *change) error {
	var files []tarcp.File
	var gone []string
	for _, rel := range ch.rels {
		abs := filepath.Join(ch.t.Path, filepath.FromSlash(rel))
		dest := path.Join(ch.t.Target, rel)
		fi, err := os.Lstat(abs)
		if errors.Is(err, fs.ErrNotExist) {
			gone = append(gone, dest)
			continue
		}
		if err != nil {
			return err
		}
		files = append(files, tarcp.File{Src: abs, Name: strings.TrimPrefix(dest, "/")})
		if !fi.IsDir() {
			continue
		}
		// A new (or initially synced) directory: everything in it the
		// trigger does not ignore.
		err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == abs {
				return err
			}
			sub, ok := ch.t.match(p, d.IsDir())
			if !ok {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			files = append(files, tarcp.File{Src: p, Name: strings.TrimPrefix(path.Join(ch.t.Target, sub), "/")})
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(files) > 0 {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarcp.WriteFiles(pw, files)) }()
		err := c.CopyTo(ctx, r.ID, "/", "", "", false, pr)
		pr.Close()
		if err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		args := append([]string{"rm", "-rf", "--"}, gone...)
		code, err := c.Exec(ctx, supervisor.ExecRequest{Container: r.ID, Args: args}, supervisor.ExecIO{})
		if err != nil {
			return fmt.Errorf("removing deleted files: %w", err)
		}
		if code != 0 {
			return fmt.Errorf("removing deleted files: rm exited with code %d", code)
		}
	}
	return nil
}

// rebuild builds the service's image again and recreates its containers,
// as `up --build --no-deps SERVICE` would.
func (w *watcher) rebuild(ctx context.Context, svc string) error {
	fmt.Fprintf(w.out, "Rebuilding service %q after changes were detected...\n", svc)
	bf := &buildFlags{quiet: w.f.quiet}
	if err := buildServices(w.cmd, w.g, w.p, []string{svc}, bf, func(types.ServiceConfig) bool { return true }); err != nil {
		return fmt.Errorf("rebuilding service %q: %w", svc, err)
	}
	fmt.Fprintf(w.out, "service %q successfully built\n", svc)
	m, err := w.g.model(w.p)
	if err != nil {
		return err
	}
	c, err := supervisor.Connect(ctx, w.g.paths(), w.p.Name)
	if err != nil {
		return err
	}
	req := supervisor.UpRequest{Model: *m, Services: []string{svc}, NoDeps: true, Parallel: w.g.parallel}
	req.MaxReplicas, _ = model.MaxReplicas()
	if err := withSteps(w.cmd.ErrOrStderr(), func(progress func(supervisor.Event)) error {
		return c.Up(ctx, req, progress)
	}); err != nil {
		return err
	}
	if w.f.prune {
		store, err := w.g.openImageStore()
		if err != nil {
			return err
		}
		if _, _, err := store.Prune(false); err != nil {
			return fmt.Errorf("pruning dangling images: %w", err)
		}
	}
	return nil
}
