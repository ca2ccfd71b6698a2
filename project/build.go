package project

import "github.com/compose-spec/compose-go/v2/types"

// ImageName is the image a service runs: its `image:`, else, for a service
// that builds, `<project>-<service>` as docker compose v2 names it
// (`<project>_<service>` under --compatibility, as compose v1).
func (p *Project) ImageName(s types.ServiceConfig) string {
	if s.Image != "" || s.Build == nil {
		return s.Image
	}
	sep := p.NameSeparator
	if sep == "" {
		sep = "-"
	}
	return p.Name + sep + s.Name
}
