package project

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// Model is what the rest of berth consumes: a project reduced to plain,
// JSON-safe values, each service with its replica count and config hash.
// The CLI sends it to the project's supervisor.
type Model struct {
	Name        string             `json:"name"`
	WorkingDir  string             `json:"working_dir"`
	ConfigFiles []string           `json:"config_files"`
	Services    []Service          `json:"services"` // sorted by name
	Networks    map[string]Network `json:"networks,omitempty"`
	Volumes     map[string]Volume  `json:"volumes,omitempty"`
}

// Service is one compose service, ready to be turned into containers.
type Service struct {
	Name          string                `json:"name"`
	Image         string                `json:"image"`
	PullPolicy    string                `json:"pull_policy,omitempty"`
	Replicas      int                   `json:"replicas"`
	ContainerName string                `json:"container_name,omitempty"`
	Hash          string                `json:"hash"`
	DependsOn     map[string]Dependency `json:"depends_on,omitempty"`
	Labels        map[string]string     `json:"labels,omitempty"`

	// Command and Entrypoint are nil when the image's are used; an empty,
	// non-nil list clears the image's.
	Command    []string `json:"command"`
	Entrypoint []string `json:"entrypoint"`
	// Environment is KEY=VALUE, sorted; variables without a value are left out.
	Environment []string `json:"environment,omitempty"`
	WorkingDir  string   `json:"working_dir,omitempty"`
	User        string   `json:"user,omitempty"`
	GroupAdd    []string `json:"group_add,omitempty"`
	Hostname    string   `json:"hostname,omitempty"`
	Domainname  string   `json:"domainname,omitempty"`
	Tty         bool     `json:"tty,omitempty"`
	StdinOpen   bool     `json:"stdin_open,omitempty"`
	Init        bool     `json:"init,omitempty"`

	StopSignal      string        `json:"stop_signal,omitempty"`
	StopGracePeriod time.Duration `json:"stop_grace_period"`
	Restart         string        `json:"restart,omitempty"`
	Healthcheck     *Healthcheck  `json:"healthcheck,omitempty"`

	Privileged  bool              `json:"privileged,omitempty"`
	ReadOnly    bool              `json:"read_only,omitempty"`
	CapAdd      []string          `json:"cap_add,omitempty"`
	CapDrop     []string          `json:"cap_drop,omitempty"`
	SecurityOpt []string          `json:"security_opt,omitempty"`
	Ulimits     map[string]Ulimit `json:"ulimits,omitempty"`
	Sysctls     map[string]string `json:"sysctls,omitempty"`
	Tmpfs       []string          `json:"tmpfs,omitempty"`
	ShmSize     int64             `json:"shm_size,omitempty"`
	Resources   Resources         `json:"resources"`
	Logging     Logging           `json:"logging"`

	NetworkMode string              `json:"network_mode,omitempty"`
	Networks    []NetworkAttachment `json:"networks,omitempty"` // in priority order
	Ports       []Port              `json:"ports,omitempty"`
	Expose      []string            `json:"expose,omitempty"`
	DNS         []string            `json:"dns,omitempty"`
	DNSSearch   []string            `json:"dns_search,omitempty"`
	DNSOpt      []string            `json:"dns_opt,omitempty"`
	ExtraHosts  []string            `json:"extra_hosts,omitempty"` // host:ip
	Links       []string            `json:"links,omitempty"`       // service[:alias]

	Volumes     []VolumeMount `json:"volumes,omitempty"`
	VolumesFrom []string      `json:"volumes_from,omitempty"`
}

// Dependency is one depends_on entry.
type Dependency struct {
	Condition string `json:"condition"` // service_started, service_healthy, service_completed_successfully
	Required  bool   `json:"required"`
	Restart   bool   `json:"restart,omitempty"`
}

// Healthcheck is compose's healthcheck with defaults applied later by the engine.
type Healthcheck struct {
	Test          []string      `json:"test,omitempty"`
	Interval      time.Duration `json:"interval,omitempty"`
	Timeout       time.Duration `json:"timeout,omitempty"`
	StartPeriod   time.Duration `json:"start_period,omitempty"`
	StartInterval time.Duration `json:"start_interval,omitempty"`
	Retries       int           `json:"retries,omitempty"`
	Disable       bool          `json:"disable,omitempty"`
}

// Ulimit is one rlimit; -1 is unlimited.
type Ulimit struct {
	Soft int64 `json:"soft"`
	Hard int64 `json:"hard"`
}

// Resources are the cgroup limits: mem_limit, memswap_limit, cpus,
// cpu_shares, cpuset, pids_limit and deploy.resources.limits merged.
type Resources struct {
	MemoryBytes     int64  `json:"memory,omitempty"`
	MemorySwapBytes int64  `json:"memswap,omitempty"`
	NanoCPUs        int64  `json:"nano_cpus,omitempty"`
	CPUShares       int64  `json:"cpu_shares,omitempty"`
	CpusetCpus      string `json:"cpuset,omitempty"`
	PidsLimit       int64  `json:"pids_limit,omitempty"`
	OomScoreAdj     int64  `json:"oom_score_adj,omitempty"`
}

// Logging is the json-file driver's options (max-size, max-file).
type Logging struct {
	Driver  string            `json:"driver,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}

// NetworkAttachment is a service's place on one network.
type NetworkAttachment struct {
	Key     string   `json:"key"`  // the network's key in the compose file
	Name    string   `json:"name"` // the engine's name, <project>_<key> or `name:`
	Aliases []string `json:"aliases,omitempty"`
	IPv4    string   `json:"ipv4_address,omitempty"`
	MAC     string   `json:"mac_address,omitempty"`
}

// Port is one published port.
type Port struct {
	HostIP    string `json:"host_ip,omitempty"`
	Published string `json:"published,omitempty"` // "" means a random host port; may be a range
	Target    uint32 `json:"target"`
	Protocol  string `json:"protocol"`
}

// Network is a top-level network.
type Network struct {
	Name       string            `json:"name"`
	External   bool              `json:"external,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
	Driver     string            `json:"driver,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	Subnet     string            `json:"subnet,omitempty"`
	Gateway    string            `json:"gateway,omitempty"`
	IPRange    string            `json:"ip_range,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// Volume is a top-level named volume.
type Volume struct {
	Name       string            `json:"name"`
	External   bool              `json:"external,omitempty"`
	Driver     string            `json:"driver,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// DefaultStopGracePeriod is compose's and docker's.
const DefaultStopGracePeriod = 10 * time.Second

// Model reduces the loaded project to berth's model.
func (p *Project) Model() (*Model, error) {
	m := &Model{
		Name:        p.Name,
		WorkingDir:  p.WorkingDir,
		ConfigFiles: p.ComposeFiles,
		Networks:    map[string]Network{},
		Volumes:     map[string]Volume{},
	}
	for key, n := range p.Networks {
		nw := Network{Name: p.NetworkName(key), External: bool(n.External), Internal: n.Internal,
			Driver: n.Driver, DriverOpts: n.DriverOpts, Labels: n.Labels}
		for _, c := range n.Ipam.Config {
			if c != nil && c.Subnet != "" {
				nw.Subnet, nw.Gateway, nw.IPRange = c.Subnet, c.Gateway, c.IPRange
				break
			}
		}
		m.Networks[key] = nw
	}
	for key, v := range p.Volumes {
		m.Volumes[key] = Volume{Name: p.VolumeName(key), External: bool(v.External),
			Driver: v.Driver, DriverOpts: v.DriverOpts, Labels: v.Labels}
	}
	names := p.ServiceNames()
	sort.Strings(names)
	for _, name := range names {
		s, err := p.service(p.Services[name])
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", name, err)
		}
		m.Services = append(m.Services, s)
	}
	return m, nil
}

// Service returns the model's service called name.
func (m *Model) Service(name string) (*Service, bool) {
	for i := range m.Services {
		if m.Services[i].Name == name {
			return &m.Services[i], true
		}
	}
	return nil, false
}

// ServiceNames returns the names of the model's services, sorted.
func (m *Model) ServiceNames() []string {
	out := make([]string, len(m.Services))
	for i, s := range m.Services {
		out[i] = s.Name
	}
	return out
}

func (p *Project) service(s types.ServiceConfig) (Service, error) {
	hash, err := ServiceHash(s)
	if err != nil {
		return Service{}, err
	}
	out := Service{
		Name:            s.Name,
		Image:           s.Image,
		PullPolicy:      s.PullPolicy,
		Replicas:        s.GetScale(),
		ContainerName:   s.ContainerName,
		Hash:            hash,
		Labels:          s.Labels,
		WorkingDir:      s.WorkingDir,
		User:            s.User,
		GroupAdd:        s.GroupAdd,
		Hostname:        s.Hostname,
		Domainname:      s.DomainName,
		Tty:             s.Tty,
		StdinOpen:       s.StdinOpen,
		Init:            s.Init != nil && *s.Init,
		StopSignal:      s.StopSignal,
		StopGracePeriod: DefaultStopGracePeriod,
		Restart:         s.Restart,
		Privileged:      s.Privileged,
		ReadOnly:        s.ReadOnly,
		CapAdd:          s.CapAdd,
		CapDrop:         s.CapDrop,
		SecurityOpt:     s.SecurityOpt,
		Sysctls:         s.Sysctls,
		Tmpfs:           s.Tmpfs,
		ShmSize:         int64(s.ShmSize),
		NetworkMode:     s.NetworkMode,
		DNS:             s.DNS,
		DNSSearch:       s.DNSSearch,
		DNSOpt:          s.DNSOpts,
		Links:           s.Links,
		VolumesFrom:     s.VolumesFrom,
		Expose:          s.Expose,
	}
	if s.Image == "" {
		return out, fmt.Errorf("has neither an image nor a build context specified")
	}
	if s.Command != nil {
		out.Command = []string(s.Command)
	}
	if s.Entrypoint != nil {
		out.Entrypoint = []string(s.Entrypoint)
	}
	for k, v := range s.Environment {
		if v != nil {
			out.Environment = append(out.Environment, k+"="+*v)
		}
	}
	sort.Strings(out.Environment)
	if s.StopGracePeriod != nil {
		out.StopGracePeriod = time.Duration(*s.StopGracePeriod)
	}
	if s.Deploy != nil && s.Deploy.RestartPolicy != nil && out.Restart == "" {
		out.Restart = deployRestart(s.Deploy.RestartPolicy)
	}
	if len(s.DependsOn) > 0 {
		out.DependsOn = map[string]Dependency{}
		for name, d := range s.DependsOn {
			out.DependsOn[name] = Dependency{Condition: d.Condition, Required: d.Required, Restart: d.Restart}
		}
	}
	if hc := s.HealthCheck; hc != nil {
		h := &Healthcheck{Test: hc.Test, Disable: hc.Disable}
		dur := func(d *types.Duration) time.Duration {
			if d == nil {
				return 0
			}
			return time.Duration(*d)
		}
		h.Interval, h.Timeout, h.StartPeriod, h.StartInterval = dur(hc.Interval), dur(hc.Timeout), dur(hc.StartPeriod), dur(hc.StartInterval)
		if hc.Retries != nil {
			h.Retries = int(*hc.Retries)
		}
		out.Healthcheck = h
	}
	if len(s.Ulimits) > 0 {
		out.Ulimits = map[string]Ulimit{}
		for name, u := range s.Ulimits {
			if u == nil {
				continue
			}
			l := Ulimit{Soft: int64(u.Soft), Hard: int64(u.Hard)}
			if u.Single != 0 {
				l = Ulimit{Soft: int64(u.Single), Hard: int64(u.Single)}
			}
			out.Ulimits[name] = l
		}
	}
	out.Resources = resources(s)
	if s.Logging != nil {
		out.Logging = Logging{Driver: s.Logging.Driver, Options: s.Logging.Options}
	}
	for host, ips := range s.ExtraHosts {
		for _, ip := range ips {
			out.ExtraHosts = append(out.ExtraHosts, host+":"+ip)
		}
	}
	sort.Strings(out.ExtraHosts)
	for _, pc := range s.Ports {
		out.Ports = append(out.Ports, Port{HostIP: pc.HostIP, Published: pc.Published, Target: pc.Target, Protocol: orDefault(pc.Protocol, "tcp")})
	}
	for _, v := range s.Volumes {
		out.Volumes = append(out.Volumes, volumeMount(v))
	}
	out.Networks = p.attachments(s)
	return out, nil
}

// attachments lists the service's networks, highest priority first, then by
// key, as docker compose orders them (the first one gets the default route).
func (p *Project) attachments(s types.ServiceConfig) []NetworkAttachment {
	type entry struct {
		key string
		pri int
		cfg *types.ServiceNetworkConfig
	}
	var list []entry
	for key, cfg := range s.Networks {
		e := entry{key: key, cfg: cfg}
		if cfg != nil {
			e.pri = cfg.Priority
			if cfg.GatewayPriority > e.pri {
				e.pri = cfg.GatewayPriority
			}
		}
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].pri != list[j].pri {
			return list[i].pri > list[j].pri
		}
		return list[i].key < list[j].key
	})
	var out []NetworkAttachment
	for _, e := range list {
		a := NetworkAttachment{Key: e.key, Name: p.NetworkName(e.key)}
		if e.cfg != nil {
			a.Aliases, a.IPv4, a.MAC = e.cfg.Aliases, e.cfg.Ipv4Address, e.cfg.MacAddress
		}
		if a.MAC == "" && len(list) == 1 {
			a.MAC = s.MacAddress
		}
		out = append(out, a)
	}
	return out
}

func resources(s types.ServiceConfig) Resources {
	r := Resources{
		MemoryBytes:     int64(s.MemLimit),
		MemorySwapBytes: int64(s.MemSwapLimit),
		NanoCPUs:        int64(float64(s.CPUS) * 1e9),
		CPUShares:       s.CPUShares,
		CpusetCpus:      s.CPUSet,
		PidsLimit:       s.PidsLimit,
		OomScoreAdj:     s.OomScoreAdj,
	}
	if s.Deploy != nil && s.Deploy.Resources.Limits != nil {
		l := s.Deploy.Resources.Limits
		if l.MemoryBytes != 0 {
			r.MemoryBytes = int64(l.MemoryBytes)
		}
		if l.NanoCPUs != 0 {
			r.NanoCPUs = int64(float64(l.NanoCPUs) * 1e9)
		}
		if l.Pids != 0 {
			r.PidsLimit = l.Pids
		}
	}
	return r
}

// deployRestart maps deploy.restart_policy to the restart key's words.
func deployRestart(rp *types.RestartPolicy) string {
	switch rp.Condition {
	case "none":
		return "no"
	case "on-failure":
		if rp.MaxAttempts != nil {
			return fmt.Sprintf("on-failure:%d", *rp.MaxAttempts)
		}
		return "on-failure"
	case "any", "":
		return "always"
	}
	return strings.TrimSpace(rp.Condition)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
