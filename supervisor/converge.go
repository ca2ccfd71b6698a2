package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/graph"
	"github.com/berthrun/berth/internal/errdefs"
	"github.com/berthrun/berth/internal/fault"
	"github.com/berthrun/berth/project/model"
)

// up converges the project to req.Model: images first (nothing is created
// when one is missing), then each service in dependency order, each as soon
// as its dependencies meet their conditions.
func (s *Supervisor) up(ctx context.Context, req UpRequest, progress func(Event)) error {
	m := &req.Model
	if m.Name != s.project {
		return fmt.Errorf("this supervisor runs project %q, not %q", s.project, m.Name)
	}
	for name, n := range req.Scale {
		svc, ok := m.Service(name)
		if !ok {
			return errdefs.Errorf(errdefs.ErrNotFound, "no such service: %s", name)
		}
		if n > 1 && svc.ContainerName != "" {
			return fmt.Errorf("services.%s: container_name allows one container only, so the service cannot be scaled to %d", name, n)
		}
		svc.Replicas = n
	}
	if err := checkReplicas(m, req.MaxReplicas); err != nil {
		return err
	}
	g, err := modelGraph(m)
	if err != nil {
		return err
	}
	targets := m.ServiceNames()
	if len(req.Services) > 0 {
		for _, name := range req.Services {
			if _, ok := m.Service(name); !ok {
				return errdefs.Errorf(errdefs.ErrNotFound, "no such service: %s", name)
			}
		}
		targets = req.Services
		if !req.NoDeps {
			targets = g.Closure(req.Services, false)
		}
	}

	imgs := map[string]*image.Image{}
	for _, name := range targets {
		svc, _ := m.Service(name)
		img, err := s.ensureImage(ctx, svc, progress)
		if err != nil {
			return err
		}
		imgs[name] = img
	}

	if err := s.checkVolumes(m, targets); err != nil {
		return err
	}
	if err := s.checkNetworks(m, targets); err != nil {
		return err
	}
	// Published ports are bound before anything is created: a taken port
	// fails up with nothing made.
	var opened []string
	for _, name := range targets {
		svc, _ := m.Service(name)
		keys, err := s.publishService(ctx, svc)
		if err != nil {
			s.closePublishers(opened)
			return err
		}
		opened = append(opened, keys...)
	}
	if err := s.ensureVolumes(m, targets, progress); err != nil {
		s.closePublishers(opened)
		return err
	}
	if err := s.ensureNetworks(ctx, m, targets, progress); err != nil {
		s.closePublishers(opened)
		return err
	}

	orphans := s.orphans(m)
	if len(orphans) > 0 && !req.RemoveOrphans {
		names := make([]string, len(orphans))
		for i, c := range orphans {
			names[i] = c.rec.Name
		}
		progress(Event{Action: "warning", Message: fmt.Sprintf("Found orphan containers (%s) for this model. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.", strings.Join(names, ", "))})
	}
	if req.RemoveOrphans {
		if err := s.removeAll(ctx, orphans, req.Timeout, false, progress); err != nil {
			return err
		}
	}

	inTargets := map[string]bool{}
	for _, t := range targets {
		inTargets[t] = true
	}
	asked := map[string]bool{}
	for _, n := range req.Services {
		asked[n] = true
	}
	var recreatedMu sync.Mutex
	recreated := map[string]bool{} // services whose containers this up replaced
	return g.Walk(ctx, graph.Up, targets, 0, func(ctx context.Context, name string) error {
		svc, _ := m.Service(name)
		if !req.NoDeps {
			for _, dep := range sortedKeys(svc.DependsOn) {
				d := svc.DependsOn[dep]
				if !inTargets[dep] && len(s.serviceContainers(dep)) == 0 {
					continue
				}
				announce := d.Condition == "service_healthy" || d.Condition == "service_completed_successfully"
				if announce {
					for _, c := range s.serviceContainers(dep) {
						progress(ev(c, "Waiting"))
					}
				}
				if err := s.waitCondition(ctx, dep, d.Condition); err != nil {
					if !d.Required {
						progress(Event{Action: "warning", Message: fmt.Sprintf("optional dependency %q of %q: %v", dep, name, err)})
						continue
					}
					return err
				}
				if announce {
					done := map[bool]string{true: "Healthy", false: "Exited"}[d.Condition == "service_healthy"]
					for _, c := range s.serviceContainers(dep) {
						progress(ev(c, done))
					}
				}
			}
		}
		plan := convergePlan{
			// --force-recreate is for the services asked for (all when none
			// were named); their dependencies only when asked too.
			force: req.ForceRecreate && (len(asked) == 0 || asked[name]) ||
				req.AlwaysRecreateDeps && len(asked) > 0 && !asked[name],
		}
		recreatedMu.Lock()
		for dep, d := range svc.DependsOn {
			// depends_on.restart: a dependency that was replaced restarts
			// its dependents.
			if d.Restart && recreated[dep] {
				plan.restart = true
			}
		}
		recreatedMu.Unlock()
		changed, err := s.convergeService(ctx, svc, imgs[name], req, plan, progress)
		if changed {
			recreatedMu.Lock()
			recreated[name] = true
			recreatedMu.Unlock()
		}
		return err
	})
}

// checkReplicas holds every service of m to the replica ceiling: the
// client's when it sent one, else the supervisor's own. The CLI checked
// already; the supervisor checks before anything is made, whoever asks.
func checkReplicas(m *model.Model, clientLimit int) error {
	limit := clientLimit
	if limit <= 0 {
		var err error
		if limit, err = model.MaxReplicas(); err != nil {
			return err
		}
	}
	for i := range m.Services {
		if err := model.CheckReplicas(m.Services[i].Name, m.Services[i].Replicas, limit); err != nil {
			return err
		}
	}
	return nil
}

// convergePlan is what up decided for one service beyond its own changes.
type convergePlan struct {
	force   bool // recreate even if unchanged
	restart bool // restart running containers (a dependency was replaced)
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

// ensureImage finds the service's image in the store, pulling it when it is
// missing (compose's default pull_policy, "missing").
func (s *Supervisor) ensureImage(ctx context.Context, svc *model.Service, progress func(Event)) (*image.Image, error) {
	img, err := s.images.Image(svc.Image)
	if err == nil && svc.PullPolicy != "always" {
		return img, nil
	}
	if err != nil && !errors.Is(err, image.ErrNotFound) {
		return nil, fmt.Errorf("service %q: image %s: %w", svc.Name, svc.Image, err)
	}
	if svc.PullPolicy == "never" {
		return nil, fmt.Errorf("service %q: image %s not found and pull_policy is never", svc.Name, svc.Image)
	}
	progress(Event{Action: "pull", Service: svc.Name, Message: "Pulling " + svc.Image})
	if _, perr := s.images.Pull(ctx, svc.Image, image.PullOptions{}); perr != nil {
		return nil, fmt.Errorf("service %q: image %s not found locally and pull failed: %w", svc.Name, svc.Image, perr)
	}
	img, err = s.images.Image(svc.Image)
	if err != nil {
		return nil, fmt.Errorf("service %q: image %s: %w", svc.Name, svc.Image, err)
	}
	return img, nil
}

// convergeService makes the service's containers match svc: replicas above
// the count go, diverged ones are recreated, missing ones are created, and
// all are started.
// It reports whether it recreated any container.
func (s *Supervisor) convergeService(ctx context.Context, svc *model.Service, img *image.Image, req UpRequest, plan convergePlan, progress func(Event)) (bool, error) {
	// Scale down first: out-of-date replicas go before current ones, the
	// highest numbers first; scaling up takes the lowest free numbers.
	existing := s.serviceContainers(svc.Name)
	stale := func(c *container) bool { return c.rec.Hash != svc.Hash || c.rec.ImageID != img.ID }
	sort.SliceStable(existing, func(i, j int) bool {
		if si, sj := stale(existing[i]), stale(existing[j]); si != sj {
			return !si
		}
		return existing[i].rec.Number < existing[j].rec.Number
	})
	keep := existing
	if len(keep) > svc.Replicas {
		keep = existing[:svc.Replicas]
		if err := s.scaleAway(ctx, existing[svc.Replicas:], req.Timeout, progress); err != nil {
			return false, err
		}
	}
	byNumber := map[int]*container{}
	for _, c := range keep {
		byNumber[c.rec.Number] = c
	}
	numbers := make([]int, 0, svc.Replicas)
	for n := range byNumber {
		numbers = append(numbers, n)
	}
	for n := 1; len(numbers) < svc.Replicas; n++ {
		if byNumber[n] == nil {
			numbers = append(numbers, n)
		}
	}
	sort.Ints(numbers)

	var changed atomic.Bool
	eg, ctx := errgroup.WithContext(ctx)
	// A few replicas at a time: each costs a CPU-bound container start, and
	// a cancelled up (its client gone, a down) stops at the next one.
	eg.SetLimit(replicaConcurrency())
	for _, n := range numbers {
		c := byNumber[n]
		eg.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var inherit map[string]string
			if c != nil {
				diverged := c.rec.Hash != svc.Hash || c.rec.ImageID != img.ID
				if plan.force || (diverged && !req.NoRecreate) {
					progress(ev(c, "Recreate"))
					if !req.RenewAnonVolumes {
						inherit = anonymousVolumes(c.rec)
					}
					if err := s.stopAndRemove(ctx, c, req.Timeout, false, nil); err != nil {
						return err
					}
					c = nil
					changed.Store(true)
				}
			}
			if c == nil {
				var err error
				progress(Event{Action: "Creating", Container: model.ContainerName(s.project, svc, n), Service: svc.Name})
				if c, err = s.create(ctx, &req.Model, svc, img, n, inherit); err != nil {
					s.failed(model.ContainerName(s.project, svc, n), svc.Name, "create", err)
					return err
				}
				progress(ev(c, "Created"))
			}
			if req.NoStart {
				return nil
			}
			if c.running() && plan.restart {
				progress(ev(c, "Restarting"))
				if err := c.stop(ctx, req.Timeout); err != nil {
					return err
				}
			} else if c.running() {
				progress(ev(c, "Running"))
				return nil
			}
			return startAsked(c, progress)
		})
	}
	// eg.Wait first: the replicas' goroutines set changed.
	err := eg.Wait()
	return changed.Load(), err
}

// replicaConcurrency is how many replicas of one service are converged at
// once: enough to keep the CPUs busy while one waits on I/O.
func replicaConcurrency() int {
	return max(4, 2*runtime.NumCPU())
}

// startAsked starts c because a command asked for it: a restart policy
// suspended by an earlier stop is in force again.
func startAsked(c *container, progress func(Event)) error {
	progress(ev(c, "Starting"))
	c.mu.Lock()
	c.rec.State.StoppedByUser = false
	c.mu.Unlock()
	if err := c.start("start"); err != nil {
		c.s.fail(c, "start", err)
		return fmt.Errorf("container %s: %w", c.rec.Name, err)
	}
	progress(ev(c, "Started"))
	return nil
}

func ev(c *container, action string) Event {
	return Event{Action: action, Container: c.rec.Name, Service: c.rec.Service, ID: c.rec.ID}
}

// create makes replica n of svc: its rootfs, volumes, network, ports, spec
// and record. The record is written first, as an intent ("creating"): a
// supervisor killed at any later step leaves objects that the next one
// finds by the container's ID and removes (see finishIntents).
func (s *Supervisor) create(ctx context.Context, m *model.Model, svc *model.Service, img *image.Image, n int, inherit map[string]string) (_ *container, err error) {
	id := newID()
	name := model.ContainerName(s.project, svc, n)
	rec := &Record{
		ID:              id,
		Name:            name,
		Project:         s.project,
		Service:         svc.Name,
		Number:          n,
		Image:           svc.Image,
		ImageID:         img.ID,
		Hash:            svc.Hash,
		Created:         time.Now().UTC(),
		Config:          *svc,
		InheritsVolumes: len(inherit) > 0,
	}
	rec.Labels = containerLabels(s.project, svc, n, img)
	rec.Labels[model.LabelWorkingDir] = m.WorkingDir
	rec.Labels[model.LabelConfigFiles] = strings.Join(m.ConfigFiles, ",")
	rec.State.Status = StatusCreating
	if err := createRecord(s.paths, rec); err != nil {
		return nil, err
	}
	fault.Point("create.intent")
	defer func() {
		if err != nil {
			if perr := s.purge(rec, len(inherit) == 0, ""); perr != nil {
				s.logf("container %s: undoing its create: %v", name, perr)
			}
		}
	}()
	rootfs, err := s.images.Mount(ctx, id, svc.Image)
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", svc.Name, err)
	}
	fault.Point("create.after-rootfs")
	mounts, err := s.prepareMounts(m, svc, img, id, rootfs, inherit)
	if err != nil {
		return nil, err
	}
	fault.Point("create.after-volumes")
	ns, err := s.setupNetwork(ctx, svc, id, name, hostnameOf(svc, id))
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", svc.Name, err)
	}
	fault.Point("create.after-network")
	dir := s.paths.ContainerDir(id)
	rec.Endpoints = ns.endpoints
	if err := s.publishContainer(ctx, svc, rec); err != nil {
		return nil, fmt.Errorf("service %q: %w", svc.Name, err)
	}
	fault.Point("create.after-ports")
	spec, warnings, err := containerSpec(rec, svc, img, rootfs, dir, ns)
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", svc.Name, err)
	}
	for _, w := range warnings {
		s.logf("container %s: %s", rec.Name, w)
	}
	engineMounts(&spec, mounts)
	rec.Spec = spec
	rec.Mounts = mounts
	rec.Command = spec.Args
	rec.StopSignal = firstNonEmpty(svc.StopSignal, img.Config.StopSignal, "SIGTERM")
	rec.Health = svc.Healthcheck
	if rec.Health == nil && img.Config.Healthcheck != nil {
		h := img.Config.Healthcheck
		rec.Health = &model.Healthcheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	rec.State.Status = StatusCreated
	if err := saveRecord(s.paths, rec); err != nil {
		return nil, err
	}
	fault.Point("create.after-record")
	c := newContainer(s, rec)
	s.add(c)
	if ns.owned {
		// The container exists now: its DNS is set up even if this up
		// is being cancelled.
		s.serveDNS(s.ctx, rec)
	}
	s.emit(ev(c, "create"))
	return c, nil
}

// containerLabels are the image's labels, the service's, and compose's own.
func containerLabels(proj string, svc *model.Service, n int, img *image.Image) map[string]string {
	l := map[string]string{}
	for k, v := range img.Config.Labels {
		l[k] = v
	}
	for k, v := range svc.Labels {
		l[k] = v
	}
	l[model.LabelProject] = proj
	l[model.LabelService] = svc.Name
	l[model.LabelNumber] = strconv.Itoa(n)
	l[model.LabelConfigHash] = svc.Hash
	l[model.LabelOneoff] = "False"
	l[model.LabelImage] = img.ID
	var deps []string
	for _, d := range sortedKeys(svc.DependsOn) {
		deps = append(deps, fmt.Sprintf("%s:%s:%t", d, svc.DependsOn[d].Condition, svc.DependsOn[d].Restart))
	}
	l[model.LabelDependsOn] = strings.Join(deps, ",")
	return l
}

// waitCondition blocks until every replica of dep meets condition.
func (s *Supervisor) waitCondition(ctx context.Context, dep, condition string) error {
	for {
		changed := s.changes()
		ok, err := s.conditionMet(dep, condition)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

func (s *Supervisor) conditionMet(dep, condition string) (bool, error) {
	cs := s.serviceContainers(dep)
	if len(cs) == 0 {
		return false, fmt.Errorf("dependency %q has no container", dep)
	}
	for _, c := range cs {
		r := c.record()
		switch condition {
		case "service_healthy":
			if healthConfig(r.Health) == nil {
				return false, fmt.Errorf("dependency failed to start: container %s has no healthcheck configured", r.Name)
			}
			switch {
			case r.State.Health == "unhealthy":
				return false, fmt.Errorf("dependency failed to start: container %s is unhealthy", r.Name)
			case r.State.Status == StatusExited && r.State.Health != "healthy":
				return false, fmt.Errorf("dependency failed to start: container %s exited (%d)", r.Name, r.State.ExitCode)
			case r.State.Health != "healthy":
				return false, nil
			}
		case "service_completed_successfully":
			switch {
			case r.State.Status != StatusExited:
				return false, nil
			case r.State.ExitCode != 0:
				return false, fmt.Errorf("service %q didn't complete successfully: exit %d", dep, r.State.ExitCode)
			}
		default: // service_started
			if r.State.Status == StatusCreated {
				return false, nil
			}
		}
	}
	return true, nil
}

// orphans are containers of services that are not in the model.
func (s *Supervisor) orphans(m *model.Model) []*container {
	var out []*container
	for _, c := range s.list() {
		if _, ok := m.Service(c.rec.Service); !ok {
			out = append(out, c)
		}
	}
	return out
}

func (s *Supervisor) serviceContainers(service string) []*container {
	var out []*container
	for _, c := range s.list() {
		if c.rec.Service == service {
			out = append(out, c)
		}
	}
	return out
}

// stopAndRemove stops c (its stop signal, then SIGKILL after the grace
// period) and removes it.
// With removeAnon (down -v, rm -v) its anonymous volumes go too.
func (s *Supervisor) stopAndRemove(ctx context.Context, c *container, grace *time.Duration, removeAnon bool, progress func(Event)) error {
	if progress == nil {
		progress = func(Event) {}
	}
	if c.running() {
		progress(ev(c, "Stopping"))
		if err := c.stop(ctx, grace); err != nil {
			s.fail(c, "stop", err)
			return fmt.Errorf("stopping %s: %w", c.rec.Name, err)
		}
		progress(ev(c, "Stopped"))
	} else {
		c.mu.Lock()
		c.rec.State.StoppedByUser = true
		if c.restartT != nil {
			c.restartT.Stop()
			c.restartT = nil
		}
		c.mu.Unlock()
	}
	progress(ev(c, "Removing"))
	err := c.remove(removeAnon)
	s.forget(c)
	if err != nil {
		s.fail(c, "remove", err)
		return fmt.Errorf("removing %s: %w", c.rec.Name, err)
	}
	progress(ev(c, "Removed"))
	return nil
}

// scaleAway removes replicas a scale-down no longer wants: they leave the
// proxies and DNS first, so new connections go to the others while theirs
// finish within the stop grace period.
func (s *Supervisor) scaleAway(ctx context.Context, cs []*container, grace *time.Duration, progress func(Event)) error {
	for _, c := range cs {
		c.mu.Lock()
		c.leaving = true
		c.mu.Unlock()
		s.serving(c.rec, false)
	}
	s.refreshBackends()
	s.drain(ctx, cs, grace)
	return s.removeAll(ctx, cs, grace, false, progress)
}

// drain waits, up to the stop grace period, until the proxies hold no
// connection to the leaving replicas any more.
func (s *Supervisor) drain(ctx context.Context, cs []*container, grace *time.Duration) {
	limit := model.DefaultStopGracePeriod
	if len(cs) > 0 {
		limit = cs[0].rec.Config.StopGracePeriod
	}
	if grace != nil {
		limit = *grace
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		open := 0
		for _, c := range cs {
			open += s.proxiedConns(c.rec.ID)
		}
		if open == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Supervisor) removeAll(ctx context.Context, cs []*container, grace *time.Duration, removeAnon bool, progress func(Event)) error {
	// A service left without containers closes its listeners. This is done
	// here, after removals, and not on every state change: an up binds a
	// service's ports before its first container exists.
	defer s.unpublishGone()
	eg, ctx := errgroup.WithContext(ctx)
	for _, c := range cs {
		eg.Go(func() error { return s.stopAndRemove(ctx, c, grace, removeAnon, progress) })
	}
	return eg.Wait()
}

// down stops and removes the project's containers, dependents first.
func (s *Supervisor) down(ctx context.Context, req DownRequest, progress func(Event)) error {
	all := s.list()
	known := map[string]bool{}
	for _, n := range req.Services {
		known[n] = true
	}
	var cs []*container
	var orphans []string
	for _, c := range all {
		if len(req.Services) > 0 && !known[c.rec.Service] && !req.RemoveOrphans {
			orphans = append(orphans, c.rec.Name)
			continue
		}
		cs = append(cs, c)
	}
	if len(orphans) > 0 {
		progress(Event{Action: "warning", Message: fmt.Sprintf("Found orphan containers (%s) for this model. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.", strings.Join(orphans, ", "))})
	}
	err := s.walkContainers(ctx, cs, graph.Down, func(ctx context.Context, c *container) error {
		return s.stopAndRemove(ctx, c, req.Timeout, req.Volumes, progress)
	})
	s.unpublishGone()
	if err != nil {
		return err
	}
	used, err := ProjectNetworks(s.net, s.project)
	if err != nil {
		return err
	}
	networks := append(req.NetworkNames, used...)
	for _, c := range cs {
		for _, e := range c.rec.Endpoints {
			networks = append(networks, e.Network)
		}
	}
	if err := s.releaseNetworks(ctx, dedupe(networks), progress); err != nil {
		return err
	}
	if req.Volumes {
		return s.removeProjectVolumes(req.VolumeNames, progress)
	}
	return nil
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// walkContainers calls fn for every container of cs, service by service in
// the direction given, the replicas of one service at once.
func (s *Supervisor) walkContainers(ctx context.Context, cs []*container, dir graph.Direction, fn func(context.Context, *container) error) error {
	byService := map[string][]*container{}
	for _, c := range cs {
		byService[c.rec.Service] = append(byService[c.rec.Service], c)
	}
	names := sortedKeys(byService)
	deps := map[string][]string{}
	for _, n := range names {
		for dep := range byService[n][0].rec.Config.DependsOn {
			if _, ok := byService[dep]; ok {
				deps[n] = append(deps[n], dep)
			}
		}
	}
	g, err := graph.New(names, deps)
	if err != nil {
		return err
	}
	return g.Walk(ctx, dir, nil, 0, func(ctx context.Context, name string) error {
		eg, ctx := errgroup.WithContext(ctx)
		for _, c := range byService[name] {
			eg.Go(func() error { return fn(ctx, c) })
		}
		return eg.Wait()
	})
}

// containersOp runs start, stop, restart, kill, rm, pause or unpause on the
// selected containers.
func (s *Supervisor) containersOp(ctx context.Context, op string, req ContainersRequest, progress func(Event)) error {
	var cs []*container
	want := map[string]bool{}
	for _, n := range req.Services {
		want[n] = true
	}
	found := map[string]bool{}
	for _, c := range s.list() {
		if len(want) > 0 && !want[c.rec.Service] {
			continue
		}
		found[c.rec.Service] = true
		if req.Index > 0 && c.rec.Number != req.Index {
			continue
		}
		cs = append(cs, c)
	}
	for n := range want {
		if !found[n] {
			return errdefs.Errorf(errdefs.ErrNotFound, "no container found for service %q", n)
		}
	}
	switch op {
	case "start":
		return s.walkContainers(ctx, cs, graph.Up, func(ctx context.Context, c *container) error {
			if c.running() {
				return nil
			}
			return startAsked(c, progress)
		})
	case "stop":
		return s.walkContainers(ctx, cs, graph.Down, func(ctx context.Context, c *container) error {
			progress(ev(c, "Stopping"))
			if err := c.stop(ctx, req.Timeout); err != nil {
				return err
			}
			progress(ev(c, "Stopped"))
			return nil
		})
	case "restart":
		if err := s.walkContainers(ctx, cs, graph.Down, func(ctx context.Context, c *container) error {
			progress(ev(c, "Restarting"))
			return c.stop(ctx, req.Timeout)
		}); err != nil {
			return err
		}
		return s.walkContainers(ctx, cs, graph.Up, func(ctx context.Context, c *container) error {
			return startAsked(c, progress)
		})
	case "kill":
		sig, err := ParseSignal(firstNonEmpty(req.Signal, "SIGKILL"))
		if err != nil {
			return err
		}
		var errs []error
		for _, c := range cs {
			if !c.running() {
				continue
			}
			progress(ev(c, "Killing"))
			if err := c.kill(sig); err != nil {
				errs = append(errs, err)
				continue
			}
			progress(ev(c, "Killed"))
		}
		return errors.Join(errs...)
	case "rm":
		var targets []*container
		for _, c := range cs {
			if c.running() && !req.Stop {
				continue
			}
			targets = append(targets, c)
		}
		return s.removeAll(ctx, targets, req.Timeout, req.Volumes, progress)
	case "pause", "unpause":
		var errs []error
		for _, c := range cs {
			if err := c.pause(op == "pause"); err != nil {
				errs = append(errs, err)
				continue
			}
			progress(ev(c, map[bool]string{true: "Paused", false: "Unpaused"}[op == "pause"]))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("unknown operation %q", op)
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
