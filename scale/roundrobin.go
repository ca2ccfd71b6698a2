package scale

import "sync/atomic"

// RoundRobin hands out a starting index that moves by one on every call, so
// that consecutive callers spread evenly over a list whose length may change
// between calls. The zero value is ready to use and safe for concurrent use.
type RoundRobin struct {
	n atomic.Uint64
}

// Next returns the index in [0, n) at which the next rotation starts, or 0
// when n is not positive.
func (r *RoundRobin) Next(n int) int {
	if n <= 0 {
		return 0
	}
	return int((r.n.Add(1) - 1) % uint64(n))
}

// Rotate returns a copy of list that starts at r.Next(len(list)) and wraps
// around: the order in which a resolver or a proxy should try the elements.
func Rotate[T any](r *RoundRobin, list []T) []T {
	out := make([]T, 0, len(list))
	start := r.Next(len(list))
	out = append(out, list[start:]...)
	return append(out, list[:start]...)
}
