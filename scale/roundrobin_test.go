package scale

import (
	"slices"
	"testing"
)

func TestRotate(t *testing.T) {
	var rr RoundRobin
	list := []string{"a", "b", "c"}
	for _, want := range [][]string{
		{"a", "b", "c"},
		{"b", "c", "a"},
		{"c", "a", "b"},
		{"a", "b", "c"},
	} {
		if got := Rotate(&rr, list); !slices.Equal(got, want) {
			t.Errorf("Rotate = %v, want %v", got, want)
		}
	}
	if !slices.Equal(list, []string{"a", "b", "c"}) {
		t.Errorf("Rotate changed its input: %v", list)
	}
	if got := Rotate(&rr, []string(nil)); len(got) != 0 {
		t.Errorf("Rotate(nil) = %v", got)
	}
}

func TestRoundRobinNext(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []int
	}{
		{0, []int{0, 0}},
		{-1, []int{0}},
		{1, []int{0, 0, 0}},
		{4, []int{0, 1, 2, 3, 0}},
	} {
		var rr RoundRobin
		var got []int
		for range tc.want {
			got = append(got, rr.Next(tc.n))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Next(%d) x%d = %v, want %v", tc.n, len(tc.want), got, tc.want)
		}
	}
}
