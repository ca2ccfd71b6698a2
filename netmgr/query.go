package netmgr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/berthrun/berth/internal/errdefs"
)

// Driver and Scope are what docker would call every berth network: berth
// has bridge networks on the local host only.
const (
	Driver = "bridge"
	Scope  = "local"
)

// Find resolves a network as docker does: by name, else by ID or a unique
// ID prefix. No match is ErrNotFound, several an ErrConflict.
func (m *Manager) Find(ref string) (Network, error) {
	n, err := m.Network(ref)
	if err == nil || (!errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalid)) {
		return n, err
	}
	all, err := m.Networks()
	if err != nil {
		return Network{}, err
	}
	var found []Network
	for _, n := range all {
		if n.ID == ref {
			return n, nil
		}
		if ref != "" && strings.HasPrefix(n.ID, ref) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return Network{}, fmt.Errorf("network %s %w", ref, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return Network{}, errdefs.Errorf(ErrConflict, "network %s is ambiguous (%d matches found based on ID prefix)", ref, len(found))
}

// Filter selects networks as `docker network ls --filter` does: values of
// one key are alternatives, keys must all match, except labels, which must
// all hold.
type Filter map[string][]string

// ParseFilters reads --filter key=value arguments.
func ParseFilters(args []string) (Filter, error) {
	f := Filter{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		switch k = strings.ToLower(strings.TrimSpace(k)); {
		case !ok:
			return nil, errdefs.Errorf(ErrInvalid, "bad format of filter (expected name=value): %q", a)
		case k == "label" || k == "name" || k == "id" || k == "driver" || k == "scope" || k == "type":
			f[k] = append(f[k], v)
		default:
			return nil, errdefs.Errorf(ErrInvalid, "invalid filter %q", k)
		}
	}
	return f, nil
}

// Match reports whether n passes the filter.
func (f Filter) Match(n Network) bool {
	test := func(key string, ok func(v string) bool) bool {
		vals := f[key]
		return len(vals) == 0 || slices.ContainsFunc(vals, ok)
	}
	for _, l := range f["label"] {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := n.Labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return test("name", func(v string) bool { return strings.Contains(n.Name, v) }) &&
		test("id", func(v string) bool { return strings.HasPrefix(n.ID, v) }) &&
		test("driver", func(v string) bool { return v == Driver }) &&
		test("scope", func(v string) bool { return v == Scope }) &&
		// berth has no builtin networks: every network is a custom one.
		test("type", func(v string) bool { return v == "custom" })
}

// Prune removes every network that passes f and has no container
// attached, compose projects' included, as docker does, and returns the
// names removed. A network that gains a container or goes away meanwhile
// is skipped; other failures are joined into the error.
func (m *Manager) Prune(ctx context.Context, f Filter) ([]string, error) {
	all, err := m.Networks()
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var removed []string
	var errs []string
	for _, n := range all {
		if len(n.Endpoints) > 0 || !f.Match(n) {
			continue
		}
		// A container may have attached since the listing: RemoveNetwork
		// checks again under the lock.
		err := m.RemoveNetwork(ctx, n.Name)
		switch {
		case err == nil:
			removed = append(removed, n.Name)
		case errors.Is(err, ErrInUse), errors.Is(err, ErrNotFound):
		default:
			errs = append(errs, fmt.Sprintf("remove network %s: %v", n.Name, err))
		}
	}
	if len(errs) > 0 {
		// One line for the CLI, as docker prints it.
		return removed, errors.New(strings.Join(errs, "; "))
	}
	return removed, nil
}

// UserSpec is a network as `berth network create` asks for it, in text.
type UserSpec struct {
	Name     string
	Driver   string
	Subnet   string
	Gateway  string
	IPRange  string
	Internal bool
	Labels   map[string]string
}

// Spec checks a user's request, in docker's words, and turns it into a
// NetworkSpec for a network the user owns (External).
func (u UserSpec) Spec() (NetworkSpec, error) {
	spec := NetworkSpec{Name: u.Name, Internal: u.Internal, External: true, Labels: u.Labels}
	if u.Driver != Driver {
		return spec, errdefs.Errorf(errdefs.ErrNotImplemented, "network driver %q is not supported: berth has %q only", u.Driver, Driver)
	}
	var err error
	if u.Subnet != "" {
		if spec.Subnet, err = netip.ParsePrefix(u.Subnet); err != nil || !spec.Subnet.Addr().Is4() {
			return spec, errdefs.Errorf(ErrInvalid, "invalid subnet %s: an IPv4 CIDR is expected", u.Subnet)
		}
		if m := spec.Subnet.Masked(); m != spec.Subnet {
			return spec, errdefs.Errorf(ErrInvalid, "invalid subnet %s: it should be %s", u.Subnet, m)
		}
	}
	if (u.Gateway != "" || u.IPRange != "") && u.Subnet == "" {
		return spec, errdefs.Errorf(ErrInvalid, "every ip-range or gateway must have a corresponding subnet")
	}
	if u.Gateway != "" {
		if spec.Gateway, err = netip.ParseAddr(u.Gateway); err != nil || !spec.Gateway.Is4() {
			return spec, errdefs.Errorf(ErrInvalid, "invalid gateway %s: an IPv4 address is expected", u.Gateway)
		}
		if !spec.Subnet.Contains(spec.Gateway) {
			return spec, errdefs.Errorf(ErrInvalid, "no matching subnet for gateway %s", u.Gateway)
		}
	}
	if u.IPRange != "" {
		if spec.IPRange, err = netip.ParsePrefix(u.IPRange); err != nil || !spec.IPRange.Addr().Is4() {
			return spec, errdefs.Errorf(ErrInvalid, "invalid ip-range %s: an IPv4 CIDR is expected", u.IPRange)
		}
		if spec.IPRange.Bits() < spec.Subnet.Bits() || !spec.Subnet.Contains(spec.IPRange.Addr()) {
			return spec, errdefs.Errorf(ErrInvalid, "no matching subnet for range %s", u.IPRange)
		}
	}
	return spec, nil
}
