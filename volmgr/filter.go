package volmgr

import (
	"strings"
)

// Filters select volumes as `docker volume ls --filter` and
// `docker volume prune --filter` do. Empty fields select everything.
type Filters struct {
	// Labels must all be present: "key" or "key=value".
	Labels []string
	// NotLabels must all be absent ("label!=key" or "label!=key=value").
	NotLabels []string
	// Names: the volume's name contains one of them.
	Names []string
	// Driver is the volume driver's name.
	Driver string
	// Dangling, when set, selects volumes that no container uses (true) or
	// that some container uses (false).
	Dangling *bool
	// All is the prune API's "all=true" filter, the same as `prune --all`.
	All bool
}

// ParseFilters reads `--filter` arguments ("label=k=v", "dangling=true",
// "name=db", "driver=local", "label!=k", "all=true").
func ParseFilters(args []string) (Filters, error) {
	var f Filters
	for _, a := range args {
		key, val, ok := strings.Cut(a, "=")
		if !ok {
			return f, invalidf("invalid filter %q: expected key=value", a)
		}
		switch key {
		case "label":
			f.Labels = append(f.Labels, val)
		case "label!":
			f.NotLabels = append(f.NotLabels, val)
		case "name":
			f.Names = append(f.Names, val)
		case "driver":
			f.Driver = val
		case "dangling", "all":
			var b bool
			switch strings.ToLower(val) {
			case "true", "1":
				b = true
			case "false", "0":
			default:
				return f, invalidf("invalid filter '%s=%s'", key, val)
			}
			if key == "all" {
				f.All = b
			} else {
				f.Dangling = &b
			}
		default:
			return f, invalidf("invalid filter '%s'", key)
		}
	}
	return f, nil
}

// Match reports whether v passes every filter.
func (f Filters) Match(v *Volume) bool {
	for _, l := range f.Labels {
		if !hasLabel(v.Labels, l) {
			return false
		}
	}
	for _, l := range f.NotLabels {
		if hasLabel(v.Labels, l) {
			return false
		}
	}
	if len(f.Names) > 0 {
		found := false
		for _, n := range f.Names {
			if strings.Contains(v.Name, n) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if f.Driver != "" && f.Driver != v.Driver {
		return false
	}
	if f.Dangling != nil && *f.Dangling == v.InUse() {
		return false
	}
	return true
}

// hasLabel matches "key" (present, any value) or "key=value".
func hasLabel(labels map[string]string, filter string) bool {
	k, want, withValue := strings.Cut(filter, "=")
	got, ok := labels[k]
	if !ok {
		return false
	}
	return !withValue || got == want
}
