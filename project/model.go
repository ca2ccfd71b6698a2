package project

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berthrun/berth/project/model"
)

// Model reduces the loaded project to berth's model.
func (p *Project) Model() (*model.Model, error) {
	m := &model.Model{
		Name:        p.Name,
		WorkingDir:  p.WorkingDir,
		ConfigFiles: p.ComposeFiles,
		Networks:    map[string]model.Network{},
		Volumes:     map[string]model.Volume{},
	}
	for key, n := range p.Networks {
		nw := model.Network{Name: p.NetworkName(key), External: bool(n.External), Internal: n.Internal,
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
		m.Volumes[key] = model.Volume{Name: p.VolumeName(key), External: bool(v.External),
			Driver: v.Driver, DriverOpts: v.DriverOpts, Labels: v.Labels}
	}
	limit, err := model.MaxReplicas()
	if err != nil {
		return nil, err
	}
	names := p.ServiceNames()
	sort.Strings(names)
	for _, name := range names {
		s, err := p.service(p.Services[name])
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", name, err)
		}
		if err := model.CheckReplicas(name, s.Replicas, limit); err != nil {
			return nil, err
		}
		m.Services = append(m.Services, s)
	}
	return m, nil
}

func (p *Project) service(s types.ServiceConfig) (model.Service, error) {
	hash, err := ServiceHash(s)
	if err != nil {
		return model.Service{}, err
	}
	out := model.Service{
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
		StopGracePeriod: model.DefaultStopGracePeriod,
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
	out.Image = p.ImageName(s)
	if out.Image == "" {
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
		out.DependsOn = map[string]model.Dependency{}
		for name, d := range s.DependsOn {
			out.DependsOn[name] = model.Dependency{Condition: d.Condition, Required: d.Required, Restart: d.Restart}
		}
	}
	if hc := s.HealthCheck; hc != nil {
		h := &model.Healthcheck{Test: hc.Test, Disable: hc.Disable}
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
		out.Ulimits = map[string]model.Ulimit{}
		for name, u := range s.Ulimits {
			if u == nil {
				continue
			}
			l := model.Ulimit{Soft: int64(u.Soft), Hard: int64(u.Hard)}
			if u.Single != 0 {
				l = model.Ulimit{Soft: int64(u.Single), Hard: int64(u.Single)}
			}
			out.Ulimits[name] = l
		}
	}
	out.Resources = resources(s)
	if s.Logging != nil {
		out.Logging = model.Logging{Driver: s.Logging.Driver, Options: s.Logging.Options}
	}
	for host, ips := range s.ExtraHosts {
		for _, ip := range ips {
			out.ExtraHosts = append(out.ExtraHosts, host+":"+ip)
		}
	}
	sort.Strings(out.ExtraHosts)
	for _, pc := range s.Ports {
		published := pc.Published
		if published == "0" {
			// Docker's spelling of "any free port", as "80" alone.
			published = ""
		}
		out.Ports = append(out.Ports, model.Port{HostIP: pc.HostIP, Published: published, Target: pc.Target, Protocol: orDefault(pc.Protocol, "tcp")})
	}
	for _, v := range s.Volumes {
		out.Volumes = append(out.Volumes, volumeMount(v))
	}
	out.Networks = p.attachments(s)
	return out, nil
}

// attachments lists the service's networks, highest priority first, then by
// key, as docker compose orders them (the first one gets the default route).
func (p *Project) attachments(s types.ServiceConfig) []model.NetworkAttachment {
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
	var out []model.NetworkAttachment
	for _, e := range list {
		a := model.NetworkAttachment{Key: e.key, Name: p.NetworkName(e.key)}
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

func resources(s types.ServiceConfig) model.Resources {
	r := model.Resources{
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

// volumeMount is a service volume as the model carries it.
func volumeMount(v types.ServiceVolumeConfig) model.VolumeMount {
	m := model.VolumeMount{Type: v.Type, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly, Consistency: v.Consistency}
	if b := v.Bind; b != nil {
		m.HasBind = true
		m.Propagation, m.CreateHostPath, m.SELinux, m.Recursive = b.Propagation, bool(b.CreateHostPath), b.SELinux, b.Recursive
	}
	if vo := v.Volume; vo != nil {
		m.NoCopy, m.Subpath = vo.NoCopy, vo.Subpath
	}
	if t := v.Tmpfs; t != nil {
		m.TmpfsSize, m.TmpfsMode = int64(t.Size), t.Mode
	}
	return m
}
