package fault

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]Action
	}{
		{"", map[string]Action{}},
		{"create.after-rootfs", map[string]Action{"create.after-rootfs": Kill}},
		{"a:pause, b:kill ,c", map[string]Action{"a": Pause, "b": Kill, "c": Kill}},
		{"a:explode", map[string]Action{}},
	} {
		if got := Parse(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestPointFiresOnce(t *testing.T) {
	var hits []string
	once.Do(func() {})
	armed = Parse("x,y:pause")
	hook = func(step string, a Action) { hits = append(hits, step+":"+string(a)) }
	defer func() { armed, hook = nil, nil }()
	for _, s := range []string{"x", "x", "z", "y"} {
		Point(s)
	}
	if want := []string{"x:kill", "y:pause"}; !reflect.DeepEqual(hits, want) {
		t.Errorf("hits = %v, want %v", hits, want)
	}
}
