package project

import "github.com/compose-spec/compose-go/v2/types"

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
