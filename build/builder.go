package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"golang.org/x/sync/errgroup"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/engine/runtime"
)

// Options describe one build.
type Options struct {
	Store        *image.Store
	CacheDir     string // step cache records
	RuntimeRoot  string // libcontainer state for RUN containers
	CgroupParent string // cgroup RUN containers are placed under
	NetworkDir   string // netmgr's state, for the bridge RUN joins by default
	NetNSDir     string // where RUN containers' network namespaces are bound

	ContextDir string
	// Dockerfile is the Dockerfile's path (default ContextDir/Dockerfile);
	// DockerfileInline, when set, is the Dockerfile itself.
	Dockerfile       string
	DockerfileInline string

	Target string
	// Contexts are named contexts (compose additional_contexts): name ->
	// a directory, or "docker-image://REF". COPY --from, RUN --mount from=
	// and FROM use them before stages and images of that name.
	Contexts  map[string]string
	BuildArgs map[string]string
	Labels    map[string]string
	Tags      []string
	// Network is RUN's network: "default" (also ""), the bridge
	// BridgeNetwork with outbound NAT; "host"; or "none".
	Network string
	// ShmSize is RUN's /dev/shm in bytes (0: the runtime's 64 MiB).
	ShmSize int64
	// ExtraHosts are "NAME IP" lines added to RUN's /etc/hosts.
	ExtraHosts []string
	// Secrets are what RUN --mount=type=secret reads, by id: compose's
	// build.secrets and `build --secret`.
	Secrets map[string]Secret
	// SSH are the agents RUN --mount=type=ssh may use: id -> an agent
	// socket or private key files (none: $SSH_AUTH_SOCK).
	SSH     map[string][]string
	NoCache bool
	Pull    bool

	Progress *Progress
}

// Secret is a build secret: a file's content, or a value (from an
// environment variable, read by the caller).
type Secret struct {
	File  string
	Value []byte
}

// Result is a built image.
type Result struct {
	ID   string
	Tags []string
}

// Builder runs one build.
type Builder struct {
	opts  Options
	df    *Dockerfile
	lex   *shell.Lex // for the FROM lines, before stages start
	meta  *vars
	plans []stagePlan
	ctx   *source
	cache *cache

	futures map[int]*future

	pullMu sync.Mutex
	pulls  map[string]*pullOnce

	bridge bridge
	// detaching is the RUN containers' network namespaces being taken off
	// the bridge, which Build waits for before it releases the bridge.
	detaching sync.WaitGroup
	// ranContainer: a RUN made a container, so the cgroup parent may be
	// this build's to remove (a build whose steps all hit leaves it be).
	ranContainer atomic.Bool

	sshMu  sync.Mutex
	agents map[string]*sshAgent
}

type future struct {
	done chan struct{}
	st   *state
	err  error
}

type pullOnce struct {
	once sync.Once
	rec  *image.Image
	err  error
}

// Build builds the Dockerfile's target stage and tags the image.
func Build(ctx context.Context, o Options) (_ *Result, err error) {
	if o.Progress == nil {
		o.Progress = NewProgress(nil)
	}
	defer func() { o.Progress.finish(err) }()
	if strings.Contains(o.ContextDir, "://") || strings.HasPrefix(o.ContextDir, "git@") {
		return nil, fmt.Errorf("build context %q: only a local directory is supported (git and URL contexts are not)", o.ContextDir)
	}
	fi, err := os.Stat(o.ContextDir)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("build context %q: not a directory", o.ContextDir)
	}
	name, src := "Dockerfile", []byte(o.DockerfileInline)
	dfPath := ""
	if o.DockerfileInline == "" {
		dfPath = o.Dockerfile
		if dfPath == "" {
			dfPath = "Dockerfile"
		}
		if !filepath.IsAbs(dfPath) {
			dfPath = filepath.Join(o.ContextDir, dfPath)
		}
		name = filepath.Base(dfPath)
		if src, err = os.ReadFile(dfPath); err != nil {
			return nil, fmt.Errorf("read Dockerfile: %w", err)
		}
	}
	df, err := Parse(name, src)
	if err != nil {
		return nil, err
	}
	o.Progress.setSource(name, src)
	if err := checkOverlay(); err != nil {
		return nil, err
	}
	ignore, err := loadIgnore(o.ContextDir, dfPath)
	if err != nil {
		return nil, err
	}
	b := &Builder{
		opts:    o,
		df:      df,
		lex:     shell.NewLex(df.Escape),
		ctx:     &source{root: o.ContextDir, context: true, ignore: ignore, hashes: loadHashCache(filepath.Join(filepath.Dir(o.CacheDir), "hashes"), absDir(o.ContextDir))},
		cache:   &cache{dir: o.CacheDir, store: o.Store},
		futures: map[int]*future{},
		pulls:   map[string]*pullOnce{},
	}
	if b.meta, err = metaScope(b.lex, df.MetaArgs, o.BuildArgs); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if b.plans, err = df.plan(b.lex, b.meta, o.Contexts); err != nil {
		return nil, err
	}
	target, err := df.Target(o.Target)
	if err != nil {
		return nil, err
	}
	st, err := b.run(ctx, target)
	// Once every stage has stopped, the bridge's release (its removal when
	// this build was its last user), the cgroup's removal and the hash
	// cache's write proceed beside the commit: they took 60-90 ms of a
	// one-file rebuild's end.
	cleaned := make(chan struct{})
	go func() {
		defer close(cleaned)
		_ = b.ctx.hashes.save() // only a cache: a failure costs rehashing next time
		b.detaching.Wait()
		b.releaseBridge()
		if b.ranContainer.Load() {
			removeCgroupParent(o.CgroupParent)
		}
	}()
	defer func() { <-cleaned }()
	if err != nil {
		return nil, err
	}
	cfg := st.Config.DeepCopy()
	if len(o.Labels) > 0 {
		if cfg.Config.Labels == nil {
			cfg.Config.Labels = map[string]string{}
		}
		for k, v := range o.Labels {
			cfg.Config.Labels[k] = v
		}
	}
	layers, err := layerBlobs(ctx, o.Store, st.Layers)
	if err != nil {
		return nil, err
	}
	img, err := o.Store.Commit(ctx, cfg, layers, o.Tags)
	if err != nil {
		return nil, err
	}
	return &Result{ID: img.ID, Tags: o.Tags}, nil
}

// run builds the stages target needs, each in its own goroutine so that
// independent stages proceed in parallel; a stage waits for another only
// where it reads it. The first failure cancels the rest, and run returns
// once every stage has stopped (no container or mount outlives it).
func (b *Builder) run(ctx context.Context, target int) (*state, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	need := needed(b.plans, target)
	for _, i := range need {
		b.futures[i] = &future{done: make(chan struct{})}
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, i := range need {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := b.futures[i]
			f.st, f.err = b.buildStage(ctx, i)
			if f.err != nil {
				mu.Lock()
				if firstErr == nil && !errors.Is(f.err, context.Canceled) {
					firstErr = f.err
				}
				mu.Unlock()
				cancel()
			}
			close(f.done)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	f := b.futures[target]
	if f.err != nil {
		return nil, f.err
	}
	return f.st, nil
}

// stage waits for stage i's result.
func (b *Builder) stage(ctx context.Context, i int) (*state, error) {
	f, ok := b.futures[i]
	if !ok {
		return nil, fmt.Errorf("stage %d is not part of this build", i)
	}
	select {
	case <-f.done:
		if f.err != nil {
			return nil, fmt.Errorf("stage %s failed", b.plans[i].name)
		}
		return f.st, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// image finds a base or --from image, pulling it when missing (or always
// once per build with --pull), as `up` does.
func (b *Builder) image(ctx context.Context, ref string) (*image.Image, error) {
	b.pullMu.Lock()
	p, ok := b.pulls[ref]
	if !ok {
		p = &pullOnce{}
		b.pulls[ref] = p
	}
	b.pullMu.Unlock()
	p.once.Do(func() {
		s := b.opts.Store
		if !b.opts.Pull {
			if rec, err := s.Image(ref); err == nil {
				p.rec = rec
				return
			} else if !errors.Is(err, image.ErrNotFound) {
				p.err = err
				return
			}
		}
		if _, err := s.Pull(ctx, ref, image.PullOptions{}); err != nil {
			p.err = err
			return
		}
		p.rec, p.err = s.Image(ref)
	})
	if p.err != nil {
		return nil, p.err
	}
	if a := p.rec.Architecture; a != "" && a != "amd64" {
		return nil, fmt.Errorf("image %s is for %s/%s: berth builds for %s only", ref, p.rec.OS, a, Platform)
	}
	return p.rec, nil
}

// baseState is a stage's starting point: scratch, another stage's result,
// or an image.
func (b *Builder) baseState(ctx context.Context, p stagePlan) (*state, error) {
	switch {
	case p.baseStage >= 0:
		st, err := b.stage(ctx, p.baseStage)
		if err != nil {
			return nil, err
		}
		return st.clone(), nil
	case isScratch(p.base):
		st := &state{Key: "scratch"}
		st.Config = v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: v1.RootFS{Type: "layers"}}
		st.Config.Config.Env = []string{"PATH=" + runtime.DefaultPath}
		return st, nil
	}
	rec, err := b.image(ctx, p.base)
	if err != nil {
		return nil, err
	}
	img, err := b.opts.Store.V1Image(rec.ID)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	st := &state{Key: "image:" + rec.ID, Config: *cf.DeepCopy(), Layers: append([]image.Layer(nil), rec.Layers...)}
	if !hasEnv(st.Config.Config.Env, "PATH") {
		st.Config.Config.Env = append(st.Config.Config.Env, "PATH="+runtime.DefaultPath)
	}
	return st, nil
}

func (s *state) clone() *state {
	c := &state{Key: s.Key, Config: *s.Config.DeepCopy(), Layers: append([]image.Layer(nil), s.Layers...), cmdSet: s.cmdSet}
	if s.scope != nil {
		c.scope = s.scope.clone()
	}
	return c
}

// buildStage runs one stage: its base, the base image's ONBUILD triggers,
// then its instructions.
func (b *Builder) buildStage(ctx context.Context, i int) (*state, error) {
	p := b.plans[i]
	s := b.df.Stages[i]
	total := 1
	for _, c := range s.Commands {
		if shown(c) {
			total++
		}
	}
	label := func(n int) string {
		if len(b.df.Stages) == 1 {
			return fmt.Sprintf("[%d/%d]", n, total)
		}
		return fmt.Sprintf("[%s %d/%d]", p.name, n, total)
	}
	from := b.opts.Progress.begin(label(1)+" FROM "+p.base, firstLineOf(s.Location))
	st, err := b.baseState(ctx, p)
	if err != nil {
		from.fail(err)
		return nil, b.df.at(s.Location, fmt.Errorf("FROM %s: %w", p.base, err))
	}
	from.done()
	st.scope = newVars()
	st.cmdSet = false
	triggers := st.Config.Config.OnBuild
	st.Config.Config.OnBuild = nil
	for _, t := range triggers {
		res, err := parser.Parse(strings.NewReader(t))
		if err != nil || len(res.AST.Children) != 1 {
			return nil, b.df.at(s.Location, fmt.Errorf("ONBUILD trigger %q of %s: cannot be parsed", t, p.base))
		}
		cmd, err := instructions.ParseCommand(res.AST.Children[0])
		if err != nil {
			return nil, b.df.at(s.Location, fmt.Errorf("ONBUILD trigger %q: %w", t, err))
		}
		if st, err = b.dispatch(ctx, st, i, cmd, "[onbuild] "+t, s.Location); err != nil {
			return nil, err
		}
	}
	n := 1
	for _, c := range s.Commands {
		l := ""
		if shown(c) {
			n++
			l = label(n)
		}
		if st, err = b.dispatch(ctx, st, i, c, l, c.Location()); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// shown says which instructions are progress steps: those that touch the
// filesystem, as BuildKit shows them.
func shown(c instructions.Command) bool {
	switch c.(type) {
	case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
		return true
	}
	return false
}

// dispatch runs one instruction on st, or takes its result from the cache.
func (b *Builder) dispatch(ctx context.Context, st *state, stageIdx int, cmd instructions.Command, label string, loc []parser.Range) (*state, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	original := strings.ToUpper(cmd.Name())
	if sc, ok := cmd.(fmt.Stringer); ok {
		original = sc.String()
	}
	fail := func(err error) error {
		return b.df.at(loc, fmt.Errorf("%s: %w", firstLine(original), err))
	}
	env := st.scope.overlay(st.Config.Config.Env)
	// A Lex of its own: stages run in parallel and a Lex is not safe for
	// concurrent use.
	lex := shell.NewLex(b.df.Escape)
	expand := func(w string) (string, error) {
		r, _, err := lex.ProcessWord(w, env)
		return r, err
	}
	if a, ok := cmd.(*instructions.ArgCommand); ok {
		// ARG changes what later steps see, not the image.
		for _, kv := range a.Args {
			v, err := argValue(lex, kv, env, b.opts.BuildArgs, b.meta)
			if err != nil {
				return nil, fail(err)
			}
			st.scope.set(kv.Key, v)
		}
		return st, nil
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if err := ex.Expand(expand); err != nil {
			return nil, fail(err)
		}
	}
	// The body of a COPY or ADD heredoc whose delimiter is not quoted
	// expands variables as BuildKit does: backslash escapes whatever the
	// Dockerfile's escape character, and quotes stay as written.
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
		raw := shell.NewLex('\\')
		raw.SkipProcessQuotes = true
		err := ex.ExpandRaw(func(w string) (string, error) {
			r, _, err := raw.ProcessWord(w, env)
			return r, err
		})
		if err != nil {
			return nil, fail(err)
		}
	}
	var sp *step
	if label != "" {
		sp = b.opts.Progress.begin(label+" "+firstLine(original), firstLineOf(loc))
	}
	x, err := b.prepare(ctx, st, stageIdx, cmd, expand, sp)
	if err != nil {
		if sp != nil {
			sp.fail(err)
		}
		return nil, fail(err)
	}
	if x.release != nil {
		defer x.release()
	}
	key := stepKey(st.Key, original, usedArgs(cmd, original, st.scope), x.extra...)
	if !b.opts.NoCache {
		if rec, ok := b.cache.get(key); ok {
			if sp != nil {
				sp.cached()
			}
			next := &state{Key: key, Config: rec.Config, Layers: rec.Layers, cmdSet: st.cmdSet, scope: st.scope}
			if x.setsCmd {
				next.cmdSet = true
			}
			return next, nil
		}
	}
	next := st.clone()
	next.Key = key
	shapeKey := ""
	if x.prior != nil && !b.opts.NoCache {
		shapeKey = stepKey(st.Key, original, usedArgs(cmd, original, st.scope), append([]string{"shape"}, x.shape...)...)
		if d, sums, ok := b.cache.shape(shapeKey); ok && b.opts.Store.HasLayer(d) {
			x.prior(b.opts.Store.LayerDir(d), sums)
		}
	}
	layered, err := x.apply(ctx, next)
	if err != nil {
		if sp != nil {
			sp.fail(err)
		}
		return nil, fail(err)
	}
	if shapeKey != "" && layered {
		b.cache.putShape(shapeKey, next.Layers[len(next.Layers)-1].DiffID, x.sums())
	}
	now := time.Now().UTC()
	createdBy := original
	if x.createdBy != "" {
		createdBy = x.createdBy
	}
	next.Config.Created = v1.Time{Time: now}
	next.Config.History = append(next.Config.History, v1.History{
		Created: v1.Time{Time: now}, CreatedBy: createdBy, Comment: "buildkit.dockerfile.v0", EmptyLayer: !layered,
	})
	if err := b.cache.put(key, &cacheRecord{Config: next.Config, Layers: next.Layers}); err != nil {
		return nil, fail(err)
	}
	if sp != nil {
		sp.done()
	}
	return next, nil
}

// prepared is an instruction ready to run: what its key needs beyond the
// instruction text, and how to apply it.
type prepared struct {
	extra []string
	// prior, for a COPY from the context, receives the layer directory
	// the same step (its key but for the sources) made last time, and
	// the content hashes of its files; sums returns those of the layer
	// the step made, for the next time.
	prior     func(dir string, sums map[string]string)
	sums      func() map[string]string
	shape     []string // extra without the sources, for prior's key
	apply     func(ctx context.Context, st *state) (layered bool, err error)
	release   func()
	createdBy string
	setsCmd   bool
}

func meta(fn func(c *v1.Config)) prepared {
	return prepared{apply: func(_ context.Context, st *state) (bool, error) {
		fn(&st.Config.Config)
		return false, nil
	}}
}

func (b *Builder) prepare(ctx context.Context, st *state, stageIdx int, cmd instructions.Command, expand func(string) (string, error), sp *step) (prepared, error) {
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		return meta(func(cfg *v1.Config) {
			for _, kv := range c.Env {
				cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
			}
		}), nil
	case *instructions.LabelCommand:
		return meta(func(cfg *v1.Config) {
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			for _, kv := range c.Labels {
				cfg.Labels[kv.Key] = kv.Value
			}
		}), nil
	case *instructions.MaintainerCommand:
		return prepared{apply: func(_ context.Context, st *state) (bool, error) {
			st.Config.Author = c.Maintainer
			return false, nil
		}}, nil
	case *instructions.UserCommand:
		return meta(func(cfg *v1.Config) { cfg.User = c.User }), nil
	case *instructions.ExposeCommand:
		var ports []string
		for _, p := range c.Ports {
			p, err := expand(p)
			if err != nil {
				return prepared{}, err
			}
			for _, f := range strings.Fields(p) {
				if !strings.Contains(f, "/") {
					f += "/tcp"
				}
				ports = append(ports, strings.ToLower(f))
			}
		}
		return meta(func(cfg *v1.Config) {
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range ports {
				cfg.ExposedPorts[p] = struct{}{}
			}
		}), nil
	case *instructions.VolumeCommand:
		return meta(func(cfg *v1.Config) {
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			for _, v := range c.Volumes {
				cfg.Volumes[v] = struct{}{}
			}
		}), nil
	case *instructions.StopSignalCommand:
		return meta(func(cfg *v1.Config) { cfg.StopSignal = c.Signal }), nil
	case *instructions.ShellCommand:
		return meta(func(cfg *v1.Config) { cfg.Shell = append([]string(nil), c.Shell...) }), nil
	case *instructions.OnbuildCommand:
		return meta(func(cfg *v1.Config) { cfg.OnBuild = append(cfg.OnBuild, c.Expression) }), nil
	case *instructions.HealthCheckCommand:
		h := c.Health
		return meta(func(cfg *v1.Config) {
			cfg.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
		}), nil
	case *instructions.CmdCommand:
		x := meta(func(cfg *v1.Config) { cfg.Cmd = cmdline(c.ShellDependantCmdLine, cfg.Shell) })
		x.setsCmd = true
		inner := x.apply
		x.apply = func(ctx context.Context, st *state) (bool, error) {
			st.cmdSet = true
			return inner(ctx, st)
		}
		return x, nil
	case *instructions.EntrypointCommand:
		return prepared{apply: func(_ context.Context, st *state) (bool, error) {
			st.Config.Config.Entrypoint = cmdline(c.ShellDependantCmdLine, st.Config.Config.Shell)
			if !st.cmdSet {
				st.Config.Config.Cmd = nil // an inherited CMD does not suit a new ENTRYPOINT
			}
			return false, nil
		}}, nil
	case *instructions.WorkdirCommand:
		dir := c.Path
		if !path.IsAbs(dir) {
			dir = path.Join(orRoot(st.Config.Config.WorkingDir), dir)
		}
		dir = path.Clean(dir)
		return prepared{apply: func(ctx context.Context, st *state) (bool, error) {
			st.Config.Config.WorkingDir = dir
			return b.fsStep(ctx, st, nil, func(rootfs string) error {
				o := copyOpts{}
				if st.Config.Config.User != "" {
					u, err := runtime.ResolveUser(rootfs, st.Config.Config.User, nil)
					if err != nil {
						return err
					}
					o.uid, o.gid = u.UID, u.GID
				}
				return mkdirs(rootfs, dir, o)
			})
		}}, nil
	case *instructions.RunCommand:
		return b.prepareRun(ctx, st, stageIdx, c, sp)
	case *instructions.CopyCommand:
		from, err := expand(c.From)
		if err != nil {
			return prepared{}, err
		}
		exclude, err := newExclude(c.ExcludePatterns, expand)
		if err != nil {
			return prepared{}, err
		}
		return b.prepareCopy(ctx, st, stageIdx, copySpec{sd: c.SourcesAndDest, from: from, chown: c.Chown, chmod: c.Chmod, parents: c.Parents, exclude: exclude})
	case *instructions.AddCommand:
		return b.prepareAdd(ctx, st, stageIdx, c, expand)
	}
	return prepared{}, fmt.Errorf("instruction %s is not supported", strings.ToUpper(cmd.Name()))
}

func (b *Builder) prepareRun(ctx context.Context, st *state, stageIdx int, c *instructions.RunCommand, sp *step) (prepared, error) {
	if instructions.GetSecurity(c) == "insecure" {
		return prepared{}, errors.New("RUN --security=insecure is not supported")
	}
	network := b.opts.Network
	if n := instructions.GetNetwork(c); n != "" && n != "default" {
		network = n
	}
	if network == "" {
		network = "default"
	}
	args, files, err := runArgs(c, st.Config.Config.Shell)
	if err != nil {
		return prepared{}, err
	}
	mounts, err := b.prepareMounts(ctx, stageIdx, st.Config.Config.WorkingDir, instructions.GetMounts(c))
	if err != nil {
		return prepared{}, err
	}
	extra := append([]string{"network=" + network}, mounts.extra...)
	for _, f := range c.Files {
		extra = append(extra, "heredoc "+f.Name+"\n"+f.Data)
	}
	return prepared{
		extra:     extra,
		release:   mounts.close,
		createdBy: "RUN " + strings.Join(args, " ") + " # buildkit",
		apply: func(ctx context.Context, st *state) (bool, error) {
			cfg := st.Config.Config
			// ARGs reach RUN as environment variables; ENV wins.
			env := append([]string(nil), cfg.Env...)
			for _, kv := range st.scope.sorted() {
				k, v, _ := strings.Cut(kv, "=")
				if !hasEnv(env, k) {
					env = append(env, k+"="+v)
				}
			}
			env = append(env, mounts.env...)
			if mounts.sshSock != "" && !hasEnv(env, "SSH_AUTH_SOCK") {
				env = append(env, "SSH_AUTH_SOCK="+mounts.sshSock)
			}
			stubs := append(append([]string(nil), mountpointStubs...), mounts.targets...)
			id := "build-" + randomHex(12)
			var net *attachment
			if network == "default" {
				// Joined while the step's layers are mounted; left
				// once the container is gone (or the step failed).
				net = b.attachSoon(ctx, id)
				defer b.detach(net)
			}
			return b.fsStep(ctx, st, stubs, func(rootfs string) error {
				rs := runSpec{id: id, rootfs: rootfs, args: args, env: env, workdir: orRoot(cfg.WorkingDir), user: cfg.User, network: network, net: net, files: files,
					binds: mounts.binds, tmpfs: mounts.tmpfs}
				if sp != nil {
					rs.output = sp.log
				}
				return b.runContainer(ctx, rs)
			})
		},
	}, nil
}

// prepareCopy resolves a COPY or ADD: from the context (its sources'
// digest goes into the key), or from a stage or image (its identity does).
func (b *Builder) prepareCopy(ctx context.Context, st *state, stageIdx int, spec copySpec) (prepared, error) {
	mode, err := parseChmod(spec.chmod)
	if err != nil {
		return prepared{}, err
	}
	sd := spec.sd
	resolve := func(src *source) ([]item, error) {
		if spec.parents {
			return resolveParents(src, sd.SourcePaths, spec.exclude)
		}
		items, err := resolveSources(src, sd.SourcePaths, spec.exclude)
		if err != nil {
			return nil, err
		}
		remote, err := urlItems(spec.urls, spec.unpackURLs)
		return append(remote, items...), err
	}
	x := prepared{createdBy: ""}
	src := b.ctx
	switch {
	case len(sd.SourceContents) > 0:
		dir, err := os.MkdirTemp(b.tmpDir(), "heredoc-")
		if err != nil {
			return prepared{}, err
		}
		x.release = func() { os.RemoveAll(dir) }
		for _, sc := range sd.SourceContents {
			name := path.Clean("/" + sc.Path)[1:]
			if err := os.WriteFile(filepath.Join(dir, name), []byte(sc.Data), 0o644); err != nil {
				x.release()
				return prepared{}, err
			}
			sd.SourcePaths = append(sd.SourcePaths, name)
			x.extra = append(x.extra, "heredoc "+name+"\n"+sc.Data)
		}
		src = &source{root: dir}
	case spec.from != "" && b.namedDir(spec.from) != "":
		src = &source{root: b.namedDir(spec.from), context: true}
	case spec.from != "":
		// A stage's or image's identity keys the step; its files are
		// mounted and read only when the step runs (never on a cache hit).
		from := spec.from
		var layers []image.Layer
		if j, ok := b.df.stageIndex(from, stageIdx); ok && !b.namedImage(&from) {
			fst, err := b.stage(ctx, j)
			if err != nil {
				return prepared{}, err
			}
			layers = fst.Layers
			x.extra = append(x.extra, "from "+fst.Key)
		} else {
			b.namedImage(&from)
			rec, err := b.image(ctx, from)
			if err != nil {
				return prepared{}, err
			}
			layers = rec.Layers
			x.extra = append(x.extra, "from image:"+rec.ID)
		}
		x.apply = func(ctx context.Context, st *state) (bool, error) {
			id := "build-" + randomHex(12)
			defer b.opts.Store.RemoveRootfs(id)
			diffs := make([]string, len(layers))
			for i, l := range layers {
				diffs[i] = l.DiffID
			}
			root, err := b.opts.Store.MountLayers(ctx, id, diffs)
			if err != nil {
				return false, err
			}
			src := &source{root: root}
			items, err := resolve(src)
			if err != nil {
				return false, err
			}
			dirs := make([]string, len(layers))
			for i, l := range layers {
				dirs[len(layers)-1-i] = b.opts.Store.LayerDir(l.DiffID)
			}
			return b.copyStep(ctx, st, src, items, sd, spec, mode, newLinker(root, dirs))
		}
		return x, nil
	}
	items, err := resolve(src)
	if err != nil {
		if x.release != nil {
			x.release()
		}
		return prepared{}, err
	}
	var links *linker
	if src.context {
		// The copy, if the step misses the cache, walks what the key did.
		for i := range items {
			items[i].walked = &walkMemo{}
		}
		d, err := src.digest(items)
		if err != nil {
			return prepared{}, err
		}
		x.shape = append([]string(nil), x.extra...)
		x.extra = append(x.extra, "sources "+d)
		if src.hashes != nil {
			links = newContextLinker(src.hashes.sum)
			x.prior = links.usePrior
			x.sums = links.takeSums
		}
	}
	x.apply = func(ctx context.Context, st *state) (bool, error) {
		return b.copyStep(ctx, st, src, items, sd, spec, mode, links)
	}
	return x, nil
}

// copyStep copies resolved items into the stage's filesystem.
func (b *Builder) copyStep(ctx context.Context, st *state, src *source, items []item, sd instructions.SourcesAndDest, spec copySpec, mode *os.FileMode, links *linker) (bool, error) {
	many := len(sd.SourcePaths)+len(spec.urls) > 1 || len(items) > 1
	target := destPath(sd.DestPath, st.Config.Config.WorkingDir)
	return b.fsStepLinked(ctx, st, nil, func(rootfs string) error {
		o := copyOpts{chmod: mode, extract: spec.extract, link: links}
		if spec.chown != "" {
			u, err := runtime.ResolveUser(rootfs, spec.chown, nil)
			if err != nil {
				return err
			}
			o.uid, o.gid = u.UID, u.GID
		}
		if spec.parents {
			return copyParents(rootfs, src, items, target, o)
		}
		return copyItems(rootfs, src, items, target, o, many)
	}, links)
}

// fsStep mounts the stage's layers, lets fn change the filesystem, and
// adds what changed as a layer (none when nothing did).
// Paths in stubs that the rootfs lacks are mount points the runtime will
// create; they are left out of the layer when still empty.
func (b *Builder) fsStep(ctx context.Context, st *state, stubs []string, fn func(rootfs string) error) (bool, error) {
	return b.fsStepLinked(ctx, st, stubs, fn, nil)
}

// fsStepLinked is fsStep whose fn may list links (a COPY --from's) that
// are made in the upper directory once it is unmounted.
func (b *Builder) fsStepLinked(ctx context.Context, st *state, stubs []string, fn func(rootfs string) error, links *linker) (bool, error) {
	s := b.opts.Store
	id := "build-" + randomHex(12)
	defer s.RemoveRootfs(id)
	rootfs, err := s.MountLayers(ctx, id, st.diffIDs())
	if err != nil {
		return false, err
	}
	missing := missingPaths(rootfs, stubs)
	parents := stubParents(rootfs, stubs)
	if links != nil {
		links.rootfs = rootfs
	}
	err = fn(rootfs)
	links.closeDirs()
	if err != nil {
		return false, err
	}
	if err := s.Unmount(id); err != nil {
		return false, err
	}
	upper := s.UpperDir(id)
	if err := links.apply(upper); err != nil {
		return false, err
	}
	dropStubs(upper, missing)
	dropCopiedUp(upper, parents)
	t, empty, err := image.WriteLayerTar(upper, nil)
	if err != nil || empty {
		return false, err
	}
	// The upper directory is the layer unpacked: it moves into the store.
	stored, err := s.AddBuiltLayer(ctx, upper, t)
	if err != nil {
		return false, err
	}
	h, err := v1.NewHash(stored.DiffID)
	if err != nil {
		return false, err
	}
	st.Layers = append(st.Layers, stored)
	st.Config.RootFS.Type = "layers"
	st.Config.RootFS.DiffIDs = append(st.Config.RootFS.DiffIDs, h)
	return true, nil
}

// layerBlobs returns layers as an image names them. A layer the steps
// made is its own blob (the tar of its directory); one stored without a
// digest (by an earlier version, which gzipped a layer only once an image
// named it) is measured as that tar now.
func layerBlobs(ctx context.Context, s *image.Store, layers []image.Layer) ([]image.Layer, error) {
	out := make([]image.Layer, len(layers))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i, l := range layers {
		g.Go(func() error {
			stored, ok, err := s.LayerBlob(l.DiffID)
			if err != nil {
				return err
			}
			if ok {
				out[i] = stored
				return nil
			}
			made, _, _, err := writeLayer(s.LayerDir(l.DiffID))
			if err != nil {
				return err
			}
			if made.DiffID != l.DiffID {
				return fmt.Errorf("layer %s: its stored directory reads as %s", l.DiffID, made.DiffID)
			}
			out[i], err = s.AddLayerBlob(ctx, "", made)
			return err
		})
	}
	return out, g.Wait()
}

func (b *Builder) tmpDir() string { return filepath.Join(b.opts.Store.Root(), "tmp") }

// cmdline is CMD's or ENTRYPOINT's argv: exec form as written, shell form
// through SHELL.
func cmdline(c instructions.ShellDependantCmdLine, shell []string) []string {
	if !c.PrependShell {
		return append([]string{}, c.CmdLine...)
	}
	if len(shell) == 0 {
		shell = []string{"/bin/sh", "-c"}
	}
	return append(append([]string(nil), shell...), strings.Join(c.CmdLine, " "))
}

func setEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name == k {
			out := append([]string(nil), env...)
			out[i] = k + "=" + v
			return out
		}
	}
	return append(append([]string(nil), env...), k+"="+v)
}

func hasEnv(env []string, k string) bool {
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name == k {
			return true
		}
	}
	return false
}

func orRoot(dir string) string {
	if dir == "" {
		return "/"
	}
	return dir
}

// firstLineOf is the Dockerfile line an instruction starts on (0: none).
func firstLineOf(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// removeCgroupParent removes the cgroup RUN containers were placed under
// when it is empty: it stays while a project's containers use it.
func removeCgroupParent(parent string) {
	if parent == "" {
		return
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
	dirs = append(dirs, "/sys/fs/cgroup"+parent)
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		_ = os.Remove(d)
	}
}

func absDir(d string) string {
	if a, err := filepath.Abs(d); err == nil {
		return a
	}
	return d
}

// checkOverlay refuses to build when overlayfs may keep a step's changes
// outside its upper directory: with redirect_dir a renamed directory is a
// pointer to a lower one, with metacopy a file's data stays below. Both
// are off by default.
func checkOverlay() error {
	for _, p := range []string{"redirect_dir", "metacopy"} {
		v, err := os.ReadFile("/sys/module/overlay/parameters/" + p)
		if err == nil && strings.TrimSpace(string(v)) == "Y" {
			return fmt.Errorf("overlayfs has %s on (/sys/module/overlay/parameters/%s): the builder needs it off, as it is by default", p, p)
		}
	}
	return nil
}

// namedDir returns the directory of the named context name, or "".
func (b *Builder) namedDir(name string) string {
	v, ok := b.opts.Contexts[name]
	if !ok || strings.HasPrefix(v, imageContextPrefix) {
		return ""
	}
	return v
}

// namedImage replaces *name by the image of the named context it is, and
// reports whether it was one.
func (b *Builder) namedImage(name *string) bool {
	v, ok := b.opts.Contexts[*name]
	if !ok {
		return false
	}
	ref, isImage := strings.CutPrefix(v, imageContextPrefix)
	if isImage {
		*name = ref
	}
	return isImage
}

// usedArgs is the part of a step's key that stands for build args: for
// RUN every ARG in scope (they are its environment), for anything else
// those its text names ($NAME or ${NAME...}), so that changing an ARG a
// COPY does not mention keeps it cached.
func usedArgs(cmd instructions.Command, text string, scope *vars) []string {
	all := scope.sorted()
	if _, ok := cmd.(*instructions.RunCommand); ok {
		return all
	}
	var out []string
	for _, kv := range all {
		k, _, _ := strings.Cut(kv, "=")
		if mentions(text, k) {
			out = append(out, kv)
		}
	}
	return out
}

// mentions reports whether text refers to variable name as $name or
// ${name...}.
func mentions(text, name string) bool {
	for _, p := range []string{"${" + name, "$" + name} {
		for i := strings.Index(text, p); i >= 0; {
			end := i + len(p)
			if end == len(text) || !isNameChar(text[end]) || p[1] == '{' && (text[end] == '}' || text[end] == ':') {
				return true
			}
			j := strings.Index(text[end:], p)
			if j < 0 {
				break
			}
			i = end + j
		}
	}
	return false
}

func isNameChar(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
