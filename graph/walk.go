package graph

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// Direction says which way a walk goes.
type Direction int

const (
	// Up visits a node after all its dependencies (start order).
	Up Direction = iota
	// Down visits a node after all nodes that depend on it (stop order).
	Down
)

// Walk calls fn once for every node in only (all nodes when only is nil),
// each as soon as the nodes it waits for are done, not level by level, with
// at most limit calls at once (no limit when limit <= 0). The first error cancels the context given to
// the other calls, no further node is started, and it is returned.
func (g *Graph) Walk(ctx context.Context, dir Direction, only []string, limit int, fn func(ctx context.Context, node string) error) error {
	waitsOn := g.deps
	unblocks := g.users
	if dir == Down {
		waitsOn, unblocks = g.users, g.deps
	}
	selected := map[string]bool{}
	for _, n := range only {
		selected[n] = true
	}
	// Nodes outside only still take part, as no-ops, so that order through
	// them holds: down of {a, c} in a -> b -> c stops c before a.
	call := func(n string) bool { return only == nil || selected[n] }
	pending := map[string]int{}
	var ready []string
	for _, n := range g.nodes {
		pending[n] = len(waitsOn[n])
		if pending[n] == 0 {
			ready = append(ready, n)
		}
	}

	parent := ctx
	eg, ctx := errgroup.WithContext(ctx)
	if limit > 0 {
		eg.SetLimit(limit)
	}
	// done is buffered for every node so that a finished call never blocks
	// while the loop below waits for a free slot in eg.Go.
	done := make(chan string, len(pending))
	running, left := 0, len(pending)
	for left > 0 {
		for len(ready) > 0 && ctx.Err() == nil {
			n := ready[0]
			ready = ready[1:]
			running++
			if !call(n) {
				done <- n
				continue
			}
			eg.Go(func() error {
				err := fn(ctx, n)
				done <- n
				return err
			})
		}
		if running == 0 {
			break // cancelled: nothing more will finish
		}
		n := <-done
		running--
		left--
		if ctx.Err() != nil {
			continue
		}
		for _, u := range unblocks[n] {
			pending[u]--
			if pending[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	if left > 0 {
		return parent.Err()
	}
	return nil
}
