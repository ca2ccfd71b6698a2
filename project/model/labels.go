package model

import "strconv"

// Labels that compose writes on every container, network and volume; berth
// writes the same ones so that what belongs to a project is found from state.
const (
	LabelProject     = "com.docker.compose.project"
	LabelService     = "com.docker.compose.service"
	LabelNumber      = "com.docker.compose.container-number"
	LabelConfigHash  = "com.docker.compose.config-hash"
	LabelOneoff      = "com.docker.compose.oneoff"
	LabelWorkingDir  = "com.docker.compose.project.working_dir"
	LabelConfigFiles = "com.docker.compose.project.config_files"
	LabelNetwork     = "com.docker.compose.network"
	LabelVolume      = "com.docker.compose.volume"
	LabelVersion     = "com.docker.compose.version"
	LabelImage       = "com.docker.compose.image"
	LabelDependsOn   = "com.docker.compose.depends_on"
)

// ContainerName is the name of replica n (from 1) of service s, as compose v2
// writes it: container_name when set, else <project>-<service>-<n> (with
// compose v1's _ under --compatibility).
func ContainerName(project string, s *Service, n int) string {
	if s.ContainerName != "" {
		return s.ContainerName
	}
	sep := s.NameSeparator
	if sep == "" {
		sep = "-"
	}
	return project + sep + s.Name + sep + strconv.Itoa(n)
}
