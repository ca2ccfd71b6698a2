// Package names holds berth's one set of rules for the names a user gives:
// projects, services, containers, host names, aliases, links, extra hosts,
// networks, volumes and image references. Many of them end up as file names
// under berth's roots or as lines in a container's /etc/hosts, so the rules
// keep out path separators, dot-dot and control characters as well as what
// docker and compose refuse. The CLI, the compose loader, the managers and
// the supervisor all call here, so a name accepted at one entry point is
// accepted at every other.
package names

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
)

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("invalid name")

var (
	// Compose's rule for project names (compose-go's NormalizeProjectName
	// produces names that match it).
	projectRE = LazyRegexp(`^[a-z0-9][a-z0-9_-]*$`)
	// Docker's rule for container, volume and network names
	// (daemon/names: RestrictedNameChars).
	resourceRE = LazyRegexp(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	// Compose's rule for service names (the schema's pattern of the
	// services mapping's keys).
	serviceRE = LazyRegexp(`^[a-zA-Z0-9._-]+$`)
	// A DNS name as /etc/hosts and berth's DNS server take it: labels of
	// letters, digits, '-' and '_' separated by dots.
	hostRE = LazyRegexp(`^[a-zA-Z0-9_]([a-zA-Z0-9_-]*)(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]*))*\.?$`)
)

// LazyRegexp compiles expr when first used, not when the program starts:
// the supervisor's binary is also every container's init, which never
// checks a name, and a command pays only for the patterns it uses.
func LazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// invalidError is a refused name; it is ErrInvalid to errors.Is.
type invalidError string

func (e invalidError) Error() string      { return string(e) }
func (invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, a ...any) error {
	return invalidError(fmt.Sprintf(format, a...))
}

// Project checks a project name (-p, COMPOSE_PROJECT_NAME, `name:`).
func Project(name string) error {
	if !projectRE().MatchString(name) {
		return invalid("project name %q must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit", name)
	}
	return nil
}

// Service checks a service name.
func Service(name string) error {
	if !serviceRE().MatchString(name) || name == "." || name == ".." {
		return invalid("service name %q must contain only letters, digits, '.', '_' and '-'", name)
	}
	return nil
}

// Container checks a container name (container_name).
func Container(name string) error { return resource("container", name) }

// Network checks a network's engine name.
func Network(name string) error { return resource("network", name) }

// Volume checks a named volume's engine name: docker's local driver also
// wants at least two characters.
func Volume(name string) error {
	if len(name) < 2 {
		return invalid("volume name %q must have at least two characters", name)
	}
	return resource("volume", name)
}

func resource(kind, name string) error {
	if !resourceRE().MatchString(name) || len(name) > 255 {
		return invalid("%s name %q must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 255 characters)", kind, name)
	}
	return nil
}

// Hostname checks a container's host name: a DNS name the kernel accepts
// (at most 64 bytes).
func Hostname(name string) error {
	if !hostRE().MatchString(name) || len(name) > 64 {
		return invalid("hostname %q must be a DNS name of letters, digits, '-', '_' and '.' (at most 64 characters)", name)
	}
	return nil
}

// Alias checks a network alias or a link's alias: a DNS name.
func Alias(name string) error {
	if !hostRE().MatchString(name) || len(name) > 253 {
		return invalid("alias %q must be a DNS name of letters, digits, '-', '_' and '.'", name)
	}
	return nil
}

// Link checks a links entry, "service[:alias]".
func Link(link string) error {
	svc, alias, hasAlias := strings.Cut(link, ":")
	if err := Service(svc); err != nil {
		return invalid("link %q: service name must contain only letters, digits, '.', '_' and '-'", link)
	}
	if hasAlias {
		if err := Alias(alias); err != nil {
			return invalid("link %q: alias must be a DNS name", link)
		}
	}
	return nil
}

// ExtraHost checks one extra_hosts entry: a host name and an IP address
// (or docker's "host-gateway").
func ExtraHost(host, ip string) error {
	if !hostRE().MatchString(host) || len(host) > 253 {
		return invalid("extra host %q must be a DNS name", host)
	}
	if ip != "host-gateway" && net.ParseIP(ip) == nil {
		return invalid("extra host %q: %q is not an IP address", host, ip)
	}
	return nil
}

// PathElem refuses a name that would not stay one element of a path: empty,
// ".", "..", or holding '/' or NUL. Code that joins names to berth's roots
// calls it even for names checked earlier, so that a name that slipped past
// the rules above still cannot reach outside the roots.
func PathElem(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return invalid("%q cannot be used as a file name", name)
	}
	return nil
}
