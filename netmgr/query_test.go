package netmgr

import (
	"errors"
	"net/netip"
	"testing"
)

func TestFilter(t *testing.T) {
	n := Network{Name: "proj_default", ID: "abcdef0123", Labels: map[string]string{"com.docker.compose.project": "proj", "tier": "front"}}
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"name=proj"}, true},
		{[]string{"name=other", "name=_def"}, true}, // values of a key are alternatives
		{[]string{"name=other"}, false},
		{[]string{"id=abc"}, true},
		{[]string{"id=bcd"}, false},
		{[]string{"label=tier"}, true},
		{[]string{"label=tier=front", "label=com.docker.compose.project=proj"}, true},
		{[]string{"label=tier=front", "label=missing"}, false}, // labels must all hold
		{[]string{"driver=bridge", "scope=local", "type=custom"}, true},
		{[]string{"driver=overlay"}, false},
		{[]string{"type=builtin"}, false},
	} {
		f, err := ParseFilters(tc.args)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := f.Match(n); got != tc.want {
			t.Errorf("%v: match %v, want %v", tc.args, got, tc.want)
		}
	}
	for _, bad := range []string{"name", "color=red"} {
		if _, err := ParseFilters([]string{bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestUserSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    UserSpec
		err  string // "" for none
		want NetworkSpec
	}{
		{"defaults", UserSpec{Name: "n", Driver: Driver}, "", NetworkSpec{Name: "n", External: true}},
		{"full", UserSpec{Name: "n", Driver: Driver, Subnet: "10.9.0.0/16", Gateway: "10.9.0.254", IPRange: "10.9.1.0/24", Internal: true}, "",
			NetworkSpec{Name: "n", External: true, Internal: true, Subnet: netip.MustParsePrefix("10.9.0.0/16"), Gateway: netip.MustParseAddr("10.9.0.254"), IPRange: netip.MustParsePrefix("10.9.1.0/24")}},
		{"driver", UserSpec{Name: "n", Driver: "overlay"}, `network driver "overlay" is not supported: berth has "bridge" only`, NetworkSpec{}},
		{"bad subnet", UserSpec{Name: "n", Driver: Driver, Subnet: "fd00::/64"}, "invalid subnet fd00::/64: an IPv4 CIDR is expected", NetworkSpec{}},
		{"host bits", UserSpec{Name: "n", Driver: Driver, Subnet: "10.9.0.1/16"}, "invalid subnet 10.9.0.1/16: it should be 10.9.0.0/16", NetworkSpec{}},
		{"gateway without subnet", UserSpec{Name: "n", Driver: Driver, Gateway: "10.0.0.1"}, "every ip-range or gateway must have a corresponding subnet", NetworkSpec{}},
		{"gateway outside", UserSpec{Name: "n", Driver: Driver, Subnet: "10.9.0.0/16", Gateway: "10.8.0.1"}, "no matching subnet for gateway 10.8.0.1", NetworkSpec{}},
		{"range outside", UserSpec{Name: "n", Driver: Driver, Subnet: "10.9.0.0/16", IPRange: "10.0.0.0/8"}, "no matching subnet for range 10.0.0.0/8", NetworkSpec{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.u.Spec()
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tc.want.Name || got.External != tc.want.External || got.Internal != tc.want.Internal ||
				got.Subnet != tc.want.Subnet || got.Gateway != tc.want.Gateway || got.IPRange != tc.want.IPRange {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
