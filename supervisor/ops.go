package supervisor

import (
	"context"
	"errors"
	"fmt"

	"github.com/berthrun/berth/graph"
	"github.com/berthrun/berth/internal/errdefs"
)

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
