package scale

import (
	"cmp"
	"slices"
)

// Replica is an existing container of a service as replica planning sees
// it: its number and whether it is out of date (another configuration or
// image than the service's now).
type Replica struct {
	ID     string
	Number int
	Stale  bool
}

// Replicas decides what a service with the given replicas becomes at want
// of them. A scale-down removes out-of-date replicas first, then the highest
// numbers, so that what stays is current and numbered from low; remove is
// in that order. A scale-up takes the lowest free numbers (create, in
// ascending order). keep is in ascending number order.
func Replicas(existing []Replica, want int) (keep, remove []Replica, create []int) {
	sorted := slices.Clone(existing)
	slices.SortStableFunc(sorted, func(a, b Replica) int {
		if a.Stale != b.Stale {
			if a.Stale {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Number, b.Number)
	})
	want = max(want, 0)
	if len(sorted) > want {
		keep, remove = sorted[:want], slices.Clone(sorted[want:])
		slices.SortStableFunc(remove, func(a, b Replica) int {
			if a.Stale != b.Stale {
				if a.Stale {
					return -1
				}
				return 1
			}
			return cmp.Compare(b.Number, a.Number)
		})
	} else {
		keep = sorted
	}
	taken := map[int]bool{}
	for _, r := range keep {
		taken[r.Number] = true
	}
	for n := 1; len(keep)+len(create) < want; n++ {
		if !taken[n] {
			create = append(create, n)
		}
	}
	keep = slices.Clone(keep)
	slices.SortFunc(keep, func(a, b Replica) int { return cmp.Compare(a.Number, b.Number) })
	return keep, remove, create
}
