package runtime

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/sys/capability"
)

// defaultCaps is Docker's default capability set (CapEff 0xa80425fb).
var defaultCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_RAW",
	"CAP_SYS_CHROOT",
	"CAP_MKNOD",
	"CAP_AUDIT_WRITE",
	"CAP_SETFCAP",
}

// allCaps lists, as CAP_ names, every capability this kernel knows that is
// in berth's own bounding set: a container cannot get more than its
// creator has (here, for instance, CAP_SYS_RESOURCE may be missing).
func allCaps() []string {
	last, err := capability.LastCap()
	var out []string
	for _, c := range capability.ListKnown() {
		if err == nil && c > last {
			continue
		}
		if ok, err := capability.GetBound(c); err == nil && !ok {
			continue
		}
		out = append(out, capName(c))
	}
	return out
}

func capName(c capability.Cap) string {
	return "CAP_" + strings.ToUpper(c.String())
}

// knownCap reports whether name is a capability of this library's list.
func knownCap(name string) bool {
	for _, c := range capability.ListKnown() {
		if capName(c) == name {
			return true
		}
	}
	return false
}

// normalizeCap turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" into
// "CAP_NET_ADMIN"; "all" becomes "ALL".
func normalizeCap(name string) string {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == "ALL" {
		return n
	}
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	return n
}

// capabilities applies cap_add and cap_drop to Docker's default set, with
// Docker's rules: "ALL" in add starts from every capability; "ALL" in drop
// keeps only what add names.
func capabilities(add, drop []string) ([]string, error) {
	known := allCaps()
	norm := func(list []string, mustHave bool) ([]string, bool, error) {
		var out []string
		all := false
		for _, c := range list {
			n := normalizeCap(c)
			if n == "ALL" {
				all = true
				continue
			}
			if !knownCap(n) {
				return nil, false, fmt.Errorf("unknown capability %q", c)
			}
			if mustHave && !slices.Contains(known, n) {
				return nil, false, fmt.Errorf("capability %s is not in berth's own bounding set", n)
			}
			out = append(out, n)
		}
		return out, all, nil
	}
	adds, addAll, err := norm(add, true)
	if err != nil {
		return nil, fmt.Errorf("cap_add: %w", err)
	}
	drops, dropAll, err := norm(drop, false)
	if err != nil {
		return nil, fmt.Errorf("cap_drop: %w", err)
	}
	var base []string
	switch {
	case dropAll && addAll:
		base = known
	case dropAll:
		base = adds
	case addAll:
		base = known
	default:
		base = append(slices.Clone(defaultCaps), adds...)
	}
	var out []string
	for _, c := range base {
		if !slices.Contains(known, c) {
			continue
		}
		if !dropAll && slices.Contains(drops, c) {
			continue
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}
