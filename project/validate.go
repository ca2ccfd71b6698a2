package project

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berthrun/berth/internal/names"
	"github.com/berthrun/berth/project/model"
)

// validate checks what compose-go lets through but docker refuses, or what
// berth would otherwise only find out while creating the containers: names
// that become files or /etc/hosts lines, signals, restart policies, negative
// sizes and durations, DNS servers. Each error names the file and line of
// the key.
func validate(p *types.Project, files []string) error {
	at := func(path, format string, a ...any) error {
		return locatedIn(files, path, path+": "+fmt.Sprintf(format, a...), nil)
	}
	if err := names.Project(p.Name); err != nil {
		return &Error{Msg: err.Error(), err: err}
	}
	for _, key := range sortedKeys(p.Networks) {
		n := p.Networks[key]
		name := n.Name
		if name == "" {
			name = p.Name + "_" + key
		}
		if err := names.Network(name); err != nil {
			return at("networks."+key, "%v", err)
		}
	}
	for _, key := range sortedKeys(p.Volumes) {
		v := p.Volumes[key]
		name := v.Name
		if name == "" {
			name = p.Name + "_" + key
		}
		if err := names.Volume(name); err != nil {
			return at("volumes."+key, "%v", err)
		}
	}
	svcs := p.ServiceNames()
	sort.Strings(svcs)
	for _, name := range svcs {
		if err := validateService(p.Services[name], at); err != nil {
			return err
		}
	}
	return nil
}

type locator func(path, format string, a ...any) error

func validateService(s types.ServiceConfig, at locator) error {
	key := "services." + s.Name
	if err := names.Service(s.Name); err != nil {
		// A name such as ".." cannot be found as a dotted key path.
		return at("services", "%v", err)
	}
	// compose-go reads these whole once loading is done: the same bounds
	// as for compose files.
	envFiles := s.EnvFiles
	for _, ps := range s.PreStart {
		envFiles = append(envFiles, ps.EnvFiles...)
	}
	for _, ef := range envFiles {
		if err := checkFile(ef.Path); err != nil {
			return at(key+".env_file", "%v", err)
		}
		if bool(ef.Required) && missing(ef.Path) {
			return at(key+".env_file", "env file %s not found", ef.Path)
		}
	}
	for _, lf := range s.LabelFiles {
		if err := checkFile(lf); err != nil {
			return at(key+".label_file", "%v", err)
		}
		if missing(lf) {
			return at(key+".label_file", "label file %s not found", lf)
		}
	}
	if s.Image != "" {
		if err := names.ImageRef(s.Image); err != nil {
			return at(key+".image", "%v", err)
		}
	}
	if s.ContainerName != "" {
		if err := names.Container(s.ContainerName); err != nil {
			return at(key+".container_name", "%v", err)
		}
	}
	if s.Hostname != "" {
		if err := names.Hostname(s.Hostname); err != nil {
			return at(key+".hostname", "%v", err)
		}
	}
	if s.DomainName != "" {
		if err := names.Alias(s.DomainName); err != nil {
			return at(key+".domainname", "%v", err)
		}
	}
	for _, l := range s.Links {
		if err := names.Link(l); err != nil {
			return at(key+".links", "%v", err)
		}
	}
	for _, host := range sortedKeys(s.ExtraHosts) {
		for _, ip := range s.ExtraHosts[host] {
			if err := names.ExtraHost(host, ip); err != nil {
				return at(key+".extra_hosts", "%v", err)
			}
		}
	}
	for _, net := range sortedKeys(s.Networks) {
		if cfg := s.Networks[net]; cfg != nil {
			for _, a := range cfg.Aliases {
				if err := names.Alias(a); err != nil {
					return at(key+".networks."+net, "%v", err)
				}
			}
		}
	}
	for _, d := range s.DNS {
		if !dnsServer(d) {
			return at(key+".dns", "%q is not an IP address", d)
		}
	}
	if _, err := model.ParseSignal(s.StopSignal); err != nil {
		return at(key+".stop_signal", "%v", err)
	}
	if s.Restart != "" {
		if _, _, err := model.ParseRestart(s.Restart); err != nil {
			return at(key+".restart", "%v", err)
		}
	}
	if s.StopGracePeriod != nil && *s.StopGracePeriod < 0 {
		return at(key+".stop_grace_period", "must not be negative (%s)", s.StopGracePeriod)
	}
	if err := validateResources(s, key, at); err != nil {
		return err
	}
	if hc := s.HealthCheck; hc != nil {
		for _, d := range []struct {
			name string
			v    *types.Duration
		}{{"interval", hc.Interval}, {"timeout", hc.Timeout}, {"start_period", hc.StartPeriod}, {"start_interval", hc.StartInterval}} {
			if d.v != nil && *d.v < 0 {
				return at(key+".healthcheck."+d.name, "must not be negative (%s)", d.v)
			}
		}
	}
	for i, pc := range s.Ports {
		if pc.Target == 0 || pc.Target > 65535 {
			return at(key+".ports", "container port %d of entry %d is not between 1 and 65535", pc.Target, i+1)
		}
		if pc.HostIP != "" && net.ParseIP(pc.HostIP) == nil {
			return at(key+".ports", "host IP %q is not an IP address", pc.HostIP)
		}
		if _, err := portRangeSize(pc.Published); err != nil {
			return at(key+".ports", "published port %q: %v", pc.Published, err)
		}
	}
	return nil
}

// dnsServer reports whether s names a DNS server: an IP address as docker
// takes it, or, as berth's forwarder also takes it, an IP address and a port.
func dnsServer(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || net.ParseIP(host) == nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n <= 65535
}

func validateResources(s types.ServiceConfig, key string, at locator) error {
	neg := []struct {
		name string
		v    int64
		min  int64 // -1 where docker reads it as "unlimited"
	}{
		{"cpu_shares", s.CPUShares, 0},
		{"mem_limit", int64(s.MemLimit), 0},
		{"mem_reservation", int64(s.MemReservation), 0},
		{"memswap_limit", int64(s.MemSwapLimit), -1},
		{"shm_size", int64(s.ShmSize), 0},
		{"pids_limit", s.PidsLimit, -1},
	}
	for _, n := range neg {
		if n.v < n.min {
			return at(key+"."+n.name, "must not be less than %d (%d)", n.min, n.v)
		}
	}
	if s.CPUS < 0 {
		return at(key+".cpus", "must not be negative (%g)", s.CPUS)
	}
	if d := s.Deploy; d != nil {
		if l := d.Resources.Limits; l != nil {
			if l.NanoCPUs < 0 {
				return at(key+".deploy.resources.limits.cpus", "must not be negative (%g)", float32(l.NanoCPUs))
			}
			if l.MemoryBytes < 0 {
				return at(key+".deploy.resources.limits.memory", "must not be negative (%d)", l.MemoryBytes)
			}
			if l.Pids < -1 {
				return at(key+".deploy.resources.limits.pids", "must not be less than -1 (%d)", l.Pids)
			}
		}
		if rp := d.RestartPolicy; rp != nil {
			switch rp.Condition {
			case "", "none", "on-failure", "any":
			default:
				return at(key+".deploy.restart_policy.condition", "invalid condition %q: use none, on-failure or any", rp.Condition)
			}
		}
		if d.Replicas != nil && *d.Replicas < 0 {
			return at(key+".deploy.replicas", "must not be negative (%d)", *d.Replicas)
		}
	}
	if s.Scale != nil && *s.Scale < 0 {
		return at(key+".scale", "must not be negative (%d)", *s.Scale)
	}
	return nil
}

// maxPortRange bounds one published range ("8000-8100"): compose-go expands
// a range into one entry per port while loading, and every published port
// costs the supervisor a listener, so "1-65535:1-65535" would take seconds
// and hundreds of megabytes before anything could refuse it.
const maxPortRange = 1024

// portRangeSize returns how many ports "N" or "N-M" names (0 for "", a
// random port). Host port 0 is docker's spelling of a random port.
func portRangeSize(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.Atoi(lo)
	if err != nil || a < 0 || a > 65535 {
		return 0, fmt.Errorf("not a port number")
	}
	if !isRange {
		return 1, nil
	}
	b, err := strconv.Atoi(hi)
	if err != nil || b < a || b > 65535 || a == 0 {
		return 0, fmt.Errorf("not a port range")
	}
	n := b - a + 1
	if n > maxPortRange {
		return 0, fmt.Errorf("range of %d ports is larger than %d", n, maxPortRange)
	}
	return n, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// missing tells whether nothing is at path, so that a service's env or
// label file that is not there is reported at its key: compose-go, which
// reads them later, names only the file.
func missing(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}
