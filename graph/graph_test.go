package graph

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name  string
		nodes []string
		deps  map[string][]string
		want  string
	}{
		{"cycle of three", []string{"a", "b", "c"}, map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"a"}}, "dependency cycle detected: a -> b -> c -> a"},
		{"self", []string{"a"}, map[string][]string{"a": {"a"}}, "dependency cycle detected: a -> a"},
		{"cycle below a root", []string{"root", "x", "y"}, map[string][]string{"root": {"x"}, "x": {"y"}, "y": {"x"}}, "dependency cycle detected: x -> y -> x"},
		{"missing", []string{"web"}, map[string][]string{"web": {"db"}}, `service "web" depends on undefined service "db"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.nodes, tt.deps)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	var ce *CycleError
	_, err := New([]string{"a", "b"}, map[string][]string{"a": {"b"}, "b": {"a"}})
	if !errors.As(err, &ce) || len(ce.Path) != 3 {
		t.Fatalf("cycle error not typed: %v", err)
	}
}

func TestClosure(t *testing.T) {
	g, err := New([]string{"a", "b", "c", "d"}, map[string][]string{"a": {"b"}, "b": {"c"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(g.Closure([]string{"a"}, false)); got != "[a b c]" {
		t.Errorf("deps closure = %s", got)
	}
	if got := fmt.Sprint(g.Closure([]string{"c"}, true)); got != "[a b c]" {
		t.Errorf("dependents closure = %s", got)
	}
}

// randomDAG returns n nodes where each may depend on any earlier node.
func randomDAG(r *rand.Rand, n int) ([]string, map[string][]string) {
	nodes := make([]string, n)
	deps := map[string][]string{}
	for i := range nodes {
		nodes[i] = fmt.Sprintf("n%03d", i)
		for j := 0; j < i; j++ {
			if r.Intn(100) < 3 {
				deps[nodes[i]] = append(deps[nodes[i]], nodes[j])
			}
		}
	}
	return nodes, deps
}

// TestWalkRandomDAG checks, on a 200-node random DAG, that each node runs
// after its dependencies (or dependents, going down), exactly once, and that
// independent nodes run at the same time.
func TestWalkRandomDAG(t *testing.T) {
	r := rand.New(rand.NewSource(42))
	nodes, deps := randomDAG(r, 200)
	g, err := New(nodes, deps)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []Direction{Up, Down} {
		var mu sync.Mutex
		finished := map[string]bool{}
		var running, peak atomic.Int32
		err := g.Walk(context.Background(), dir, nil, 8, func(_ context.Context, n string) error {
			cur := running.Add(1)
			defer running.Add(-1)
			for {
				p := peak.Load()
				if cur <= p || peak.CompareAndSwap(p, cur) {
					break
				}
			}
			mu.Lock()
			waits := g.Dependencies(n)
			if dir == Down {
				waits = g.Dependents(n)
			}
			for _, w := range waits {
				if !finished[w] {
					t.Errorf("dir %d: %s started before %s finished", dir, n, w)
				}
			}
			if finished[n] {
				t.Errorf("%s visited twice", n)
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			finished[n] = true
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(finished) != 200 {
			t.Fatalf("visited %d nodes", len(finished))
		}
		if peak.Load() < 2 || peak.Load() > 8 {
			t.Errorf("peak concurrency %d, want 2..8", peak.Load())
		}
	}
}

// TestWalkNotLevelByLevel: c depends only on a (fast); b (slow) is a's peer.
// c must start while b still runs.
func TestWalkNotLevelByLevel(t *testing.T) {
	g, err := New([]string{"a", "b", "c", "d"}, map[string][]string{"c": {"a"}, "d": {"b"}})
	if err != nil {
		t.Fatal(err)
	}
	bDone := make(chan struct{})
	cStartedEarly := make(chan bool, 1)
	err = g.Walk(context.Background(), Up, nil, 0, func(_ context.Context, n string) error {
		switch n {
		case "b":
			select {
			case <-time.After(2 * time.Second):
			case early := <-cStartedEarly:
				cStartedEarly <- early
			}
			close(bDone)
		case "c":
			select {
			case <-bDone:
				cStartedEarly <- false
			default:
				cStartedEarly <- true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !<-cStartedEarly {
		t.Fatal("c waited for b, which it does not depend on")
	}
}

func TestWalkErrorCancels(t *testing.T) {
	g, err := New([]string{"a", "b", "c"}, map[string][]string{"b": {"a"}, "c": {"b"}})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	var visited []string
	var mu sync.Mutex
	err = g.Walk(context.Background(), Up, nil, 2, func(_ context.Context, n string) error {
		mu.Lock()
		visited = append(visited, n)
		mu.Unlock()
		if n == "b" {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if fmt.Sprint(visited) != "[a b]" {
		t.Fatalf("visited %v; c must not start after b failed", visited)
	}
}

func TestWalkSubsetAndCancelledContext(t *testing.T) {
	g, err := New([]string{"a", "b", "c"}, map[string][]string{"b": {"a"}, "c": {"b"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := g.Walk(context.Background(), Down, []string{"a", "c"}, 1, func(_ context.Context, n string) error {
		got = append(got, n)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[c a]" {
		t.Fatalf("down over {a,c} = %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Walk(ctx, Up, nil, 0, func(context.Context, string) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("walk on a cancelled context = %v", err)
	}
}
