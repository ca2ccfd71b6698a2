package project

import (
	"fmt"
	"strconv"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berthrun/berth/project/model"
)

// ContainerName is the name of replica n (from 1) of service s, as compose v2
// writes it: container_name when set, else <project>-<service>-<n>.
func ContainerName(project string, s types.ServiceConfig, n int) string {
	if s.ContainerName != "" {
		return s.ContainerName
	}
	return fmt.Sprintf("%s-%s-%d", project, s.Name, n)
}

// OneoffName is the name of a one-off container of `run`.
func OneoffName(project, service, suffix string) string {
	return fmt.Sprintf("%s-%s-run-%s", project, service, suffix)
}

// NetworkName is the name of a network as the engine knows it: the explicit
// `name:` (set by compose-go for external and named networks) or
// <project>_<key>.
func (p *Project) NetworkName(key string) string {
	if n, ok := p.Networks[key]; ok && n.Name != "" {
		return n.Name
	}
	return p.Name + "_" + key
}

// VolumeName is the name of a named volume as the engine knows it.
func (p *Project) VolumeName(key string) string {
	if v, ok := p.Volumes[key]; ok && v.Name != "" {
		return v.Name
	}
	return p.Name + "_" + key
}

// Replicas is how many containers service name runs (deploy.replicas or scale,
// default 1).
func (p *Project) Replicas(name string) int {
	s, ok := p.Services[name]
	if !ok {
		return 0
	}
	return s.GetScale()
}

// ContainerLabels are the labels of replica n of service s, beside the
// service's own labels.
func (p *Project) ContainerLabels(s types.ServiceConfig, n int, hash string) map[string]string {
	l := map[string]string{}
	for k, v := range s.Labels {
		l[k] = v
	}
	l[model.LabelProject] = p.Name
	l[model.LabelService] = s.Name
	l[model.LabelNumber] = strconv.Itoa(n)
	l[model.LabelConfigHash] = hash
	l[model.LabelOneoff] = "False"
	l[model.LabelWorkingDir] = p.WorkingDir
	return l
}

// AllProfiles returns every profile named by a service, enabled or not.
func (p *Project) AllProfiles() []string {
	seen := map[string]bool{}
	var out []string
	add := func(s types.ServiceConfig) {
		for _, pr := range s.Profiles {
			if !seen[pr] {
				seen[pr] = true
				out = append(out, pr)
			}
		}
	}
	for _, s := range p.Services {
		add(s)
	}
	for _, s := range p.DisabledServices {
		add(s)
	}
	return out
}
