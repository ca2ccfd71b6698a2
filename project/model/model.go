// Package model is the project as the rest of berth consumes it: plain,
// JSON-safe values that the CLI sends to the project's supervisor. It knows
// none of compose-go's types and never loads a compose file, so the engine
// binary links no compose package.
package model

import "time"

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
	Name          string `json:"name"`
	Image         string `json:"image"`
	PullPolicy    string `json:"pull_policy,omitempty"`
	Replicas      int    `json:"replicas"`
	ContainerName string `json:"container_name,omitempty"`
	// NameSeparator joins project, service and number in container
	// names: "" is compose v2's "-", "_" compose v1's (--compatibility).
	NameSeparator string                `json:"name_separator,omitempty"`
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
