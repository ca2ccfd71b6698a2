package supervisor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/graph"
	"github.com/berthrun/berth/internal/errdefs"
	"github.com/berthrun/berth/project/model"
)

// up converges the project to req.Model: images first (nothing is created
// when one is missing), then the plan (plan.go) is executed service by
// service in dependency order, each as soon as its dependencies meet their
// conditions.
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
	targets, g, err := upTargets(m, req)
	if err != nil {
		return err
	}

	imgs := map[string]*image.Image{}
	imageIDs := map[string]string{}
	for _, name := range targets {
		svc, _ := m.Service(name)
		img, err := s.ensureImage(ctx, svc, progress)
		if err != nil {
			return err
		}
		imgs[name], imageIDs[name] = img, img.ID
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

	// One-off containers (run) are not replicas: the plan leaves them be.
	var recs []Record
	for _, c := range s.list() {
		if r := c.record(); !isOneOff(r.Labels) {
			recs = append(recs, r)
		}
	}
	p := plan(m, g, targets, imageIDs, recs, req)

	orphans := s.containersByID(p.Orphans)
	if len(orphans) > 0 && !p.RemoveOrphans {
		names := make([]string, len(orphans))
		for i, c := range orphans {
			names[i] = c.rec.Name
		}
		progress(Event{Action: "warning", Message: fmt.Sprintf("Found orphan containers (%s) for this model. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.", strings.Join(names, ", "))})
	}
	if p.RemoveOrphans {
		if err := s.removeAll(ctx, orphans, req.Timeout, false, progress); err != nil {
			return err
		}
	}

	inTargets := map[string]bool{}
	for _, t := range targets {
		inTargets[t] = true
	}
	return g.Walk(ctx, graph.Up, targets, 0, func(ctx context.Context, name string) error {
		svc, _ := m.Service(name)
		if !req.NoDeps {
			if err := s.waitDependencies(ctx, svc, inTargets, progress); err != nil {
				return err
			}
		}
		return s.convergeService(ctx, svc, imgs[name], req, p.Services[name], progress)
	})
}

// waitDependencies waits until every dependency of svc meets its
// depends_on condition; an optional one that fails is only warned about.
// Dependencies neither converged by this up nor running are not waited for.
func (s *Supervisor) waitDependencies(ctx context.Context, svc *model.Service, inTargets map[string]bool, progress func(Event)) error {
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
				progress(Event{Action: "warning", Message: fmt.Sprintf("optional dependency %q of %q: %v", dep, svc.Name, err)})
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
	return nil
}

// containersByID returns the containers with these IDs that still exist.
func (s *Supervisor) containersByID(ids []string) []*container {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []*container
	for _, c := range s.list() {
		if want[c.rec.ID] {
			out = append(out, c)
		}
	}
	return out
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

// ensureImage finds the service's image in the store, pulling it when its
// pull_policy says so (compose's default, "missing": when it is not there;
// daily, weekly, every_<duration>: also when the last pull is older).
func (s *Supervisor) ensureImage(ctx context.Context, svc *model.Service, progress func(Event)) (*image.Image, error) {
	img, err := s.images.Image(svc.Image)
	if err == nil {
		due, perr := model.PullDue(svc.PullPolicy, true, img.LastPulled(), time.Now())
		if perr != nil {
			return nil, fmt.Errorf("service %q: %w", svc.Name, perr)
		}
		if !due {
			return img, nil
		}
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

// convergeService executes a service's plan: the replicas a scale-down
// removes go first (drained), then each remaining replica is kept,
// recreated or created, and started (or restarted, for depends_on.restart).
func (s *Supervisor) convergeService(ctx context.Context, svc *model.Service, img *image.Image, req UpRequest, sp servicePlan, progress func(Event)) error {
	if gone := s.containersByID(sp.Remove); len(gone) > 0 {
		if err := s.scaleAway(ctx, gone, req.Timeout, progress); err != nil {
			return err
		}
	}
	byID := map[string]*container{}
	for _, c := range s.containersByID(replicaIDs(sp.Replicas)) {
		byID[c.rec.ID] = c
	}
	eg, ctx := errgroup.WithContext(ctx)
	// A few replicas at a time: each costs a CPU-bound container start, and
	// a cancelled up (its client gone, a down) stops at the next one.
	eg.SetLimit(replicaConcurrency())
	for _, rp := range sp.Replicas {
		c := byID[rp.ID]
		n := rp.Number
		eg.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			release, err := acquireSlot(ctx)
			if err != nil {
				return err
			}
			defer release()
			var inherit map[string]string
			if c != nil && rp.Action == recreateReplica {
				progress(ev(c, "Recreate"))
				if !req.RenewAnonVolumes {
					inherit = anonymousVolumes(c.rec)
					if err := s.volumes.Bequeath(inherit, svc.Name, n); err != nil {
						return err
					}
				}
				if err := s.stopAndRemove(ctx, c, req.Timeout, false, nil); err != nil {
					return err
				}
				c = nil
			}
			if c == nil {
				var err error
				if inherit == nil && !req.RenewAnonVolumes {
					// What a recreate interrupted between removing the
					// old container and creating this one left to it.
					if inherit, err = s.volumes.Bequeathed(s.project, svc.Name, n); err != nil {
						return err
					}
				}
				progress(Event{Action: "Creating", Container: model.ContainerName(s.project, svc, n), Service: svc.Name})
				if c, err = s.create(ctx, &req.Model, svc, img, n, inherit); err != nil {
					s.failed(model.ContainerName(s.project, svc, n), svc.Name, "create", err)
					return err
				}
				progress(ev(c, "Created"))
			}
			if !sp.Start {
				return nil
			}
			if c.running() && sp.Restart {
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
	return eg.Wait()
}

func replicaIDs(rs []replicaPlan) []string {
	var ids []string
	for _, r := range rs {
		if r.ID != "" {
			ids = append(ids, r.ID)
		}
	}
	return ids
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

// orphans are the containers of services that m no longer has.
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
		if c.rec.Service == service && !isOneOff(c.rec.Labels) {
			out = append(out, c)
		}
	}
	return out
}
