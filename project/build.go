package project

import "github.com/compose-spec/compose-go/v2/types"

// ImageName is the image a service runs: its `image:`, else, for a service
// that builds, `<project>-<service>` as docker compose v2 names it.
func (p *Project) ImageName(s types.ServiceConfig) string {
	if s.Image != "" || s.Build == nil {
		return s.Image
	}
	return p.Name + "-" + s.Name
}
