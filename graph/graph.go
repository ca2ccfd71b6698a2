// Package graph is the depends_on DAG: validation with errors that name a
// cycle or a missing node, and parallel walks in dependency order (up) and
// its reverse (down). It knows nodes by name only.
package graph

import (
	"fmt"
	"sort"
	"strings"
)

// Graph is a validated DAG. Edges point from a node to the nodes it depends on.
type Graph struct {
	nodes []string            // sorted, for deterministic errors and walks
	deps  map[string][]string // node -> its dependencies
	users map[string][]string // node -> nodes that depend on it
}

// New builds the graph of nodes whose dependencies are given by deps. A
// dependency on a node that is not in nodes, and a cycle, are errors.
func New(nodes []string, deps map[string][]string) (*Graph, error) {
	g := &Graph{deps: map[string][]string{}, users: map[string][]string{}}
	seen := map[string]bool{}
	for _, n := range nodes {
		if !seen[n] {
			seen[n] = true
			g.nodes = append(g.nodes, n)
		}
	}
	sort.Strings(g.nodes)
	for _, n := range g.nodes {
		ds := append([]string(nil), deps[n]...)
		sort.Strings(ds)
		for i, d := range ds {
			if i > 0 && ds[i-1] == d {
				continue
			}
			if !seen[d] {
				return nil, &MissingError{Node: n, Dependency: d}
			}
			g.deps[n] = append(g.deps[n], d)
			g.users[d] = append(g.users[d], n)
		}
	}
	if c := g.cycle(); c != nil {
		return nil, &CycleError{Path: c}
	}
	return g, nil
}

// Nodes returns the node names, sorted.
func (g *Graph) Nodes() []string { return append([]string(nil), g.nodes...) }

// Dependencies returns what n depends on directly.
func (g *Graph) Dependencies(n string) []string { return append([]string(nil), g.deps[n]...) }

// Dependents returns the nodes that depend on n directly.
func (g *Graph) Dependents(n string) []string { return append([]string(nil), g.users[n]...) }

// Closure returns names plus everything they depend on, transitively (or,
// with reverse, everything that depends on them), sorted.
func (g *Graph) Closure(names []string, reverse bool) []string {
	next := g.deps
	if reverse {
		next = g.users
	}
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, d := range next[n] {
			visit(d)
		}
	}
	for _, n := range names {
		visit(n)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// cycle returns one cycle as a path that starts and ends at the same node, or nil.
func (g *Graph) cycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range g.deps[n] {
			switch color[d] {
			case grey:
				for i, s := range stack {
					if s == d {
						found = append(append([]string(nil), stack[i:]...), d)
						return true
					}
				}
			case white:
				if visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, n := range g.nodes {
		if color[n] == white && visit(n) {
			return found
		}
	}
	return nil
}

// CycleError is a dependency cycle; Path starts and ends with the same node.
type CycleError struct{ Path []string }

func (e *CycleError) Error() string {
	return "dependency cycle detected: " + strings.Join(e.Path, " -> ")
}

// MissingError is a dependency on a node that does not exist.
type MissingError struct{ Node, Dependency string }

func (e *MissingError) Error() string {
	return fmt.Sprintf("service %q depends on undefined service %q", e.Node, e.Dependency)
}
