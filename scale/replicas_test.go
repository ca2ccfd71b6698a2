package scale

import (
	"slices"
	"testing"
)

func TestReplicas(t *testing.T) {
	r := func(n int) Replica { return Replica{Number: n} }
	stale := func(n int) Replica { return Replica{Number: n, Stale: true} }
	numbers := func(rs []Replica) []int {
		out := []int{}
		for _, x := range rs {
			out = append(out, x.Number)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		existing []Replica
		want     int
		keep     []int
		remove   []int
		create   []int
	}{
		{"none to three", nil, 3, []int{}, []int{}, []int{1, 2, 3}},
		{"same count", []Replica{r(1), r(2)}, 2, []int{1, 2}, []int{}, []int{}},
		{"down takes the highest", []Replica{r(1), r(2), r(3), r(4)}, 2, []int{1, 2}, []int{4, 3}, []int{}},
		{"down takes out-of-date first", []Replica{stale(1), r(2), r(3)}, 2, []int{2, 3}, []int{1}, []int{}},
		{"down: stale, then highest", []Replica{stale(1), r(2), stale(3), r(4)}, 1, []int{2}, []int{3, 1, 4}, []int{}},
		{"to zero", []Replica{r(1), r(2)}, 0, []int{}, []int{2, 1}, []int{}},
		{"up fills gaps from low", []Replica{r(2), r(5)}, 4, []int{2, 5}, []int{}, []int{1, 3}},
		{"up keeps stale ones", []Replica{stale(1)}, 2, []int{1}, []int{}, []int{2}},
		{"unordered input", []Replica{r(3), r(1), r(2)}, 3, []int{1, 2, 3}, []int{}, []int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keep, remove, create := Replicas(tc.existing, tc.want)
			if create == nil {
				create = []int{}
			}
			if got := numbers(keep); !slices.Equal(got, tc.keep) {
				t.Errorf("keep %v, want %v", got, tc.keep)
			}
			if got := numbers(remove); !slices.Equal(got, tc.remove) {
				t.Errorf("remove %v, want %v", got, tc.remove)
			}
			if !slices.Equal(create, tc.create) {
				t.Errorf("create %v, want %v", create, tc.create)
			}
		})
	}
}
