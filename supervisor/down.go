package supervisor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berthrun/berth/graph"
	"github.com/berthrun/berth/project/model"
)

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
			open += s.proxiedConns(c.rec.ID) + s.kernelConns(c.record())
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
		eg.Go(func() error {
			release, err := acquireSlot(ctx)
			if err != nil {
				return err
			}
			defer release()
			return s.stopAndRemove(ctx, c, grace, removeAnon, progress)
		})
	}
	return eg.Wait()
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
			eg.Go(func() error {
				release, err := acquireSlot(ctx)
				if err != nil {
					return err
				}
				defer release()
				return fn(ctx, c)
			})
		}
		return eg.Wait()
	})
}
