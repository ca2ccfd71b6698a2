package model

// The types of a service's volume entry, as compose spells them.
const (
	VolumeTypeBind      = "bind"
	VolumeTypeVolume    = "volume"
	VolumeTypeTmpfs     = "tmpfs"
	VolumeTypeImage     = "image"
	VolumeTypeNamedPipe = "npipe"
	VolumeTypeCluster   = "cluster"
)

// VolumeMount is one entry of a service's volumes: compose-go's
// ServiceVolumeConfig with plain JSON (its create_host_path does not survive
// a JSON round trip: true is omitted and comes back false), and without
// compose-go's types, which the supervisor's binary does not link (their
// package initialization ran in every container's init).
type VolumeMount struct {
	Type        string `json:"type"`
	Source      string `json:"source,omitempty"`
	Target      string `json:"target"`
	ReadOnly    bool   `json:"read_only,omitempty"`
	Consistency string `json:"consistency,omitempty"`
	// Bind options
	Propagation    string `json:"propagation,omitempty"`
	CreateHostPath bool   `json:"create_host_path,omitempty"`
	SELinux        string `json:"selinux,omitempty"`
	Recursive      string `json:"recursive,omitempty"`
	HasBind        bool   `json:"has_bind,omitempty"`
	// Volume options
	NoCopy  bool   `json:"nocopy,omitempty"`
	Subpath string `json:"subpath,omitempty"`
	// Tmpfs options
	TmpfsSize int64  `json:"tmpfs_size,omitempty"`
	TmpfsMode uint32 `json:"tmpfs_mode,omitempty"`
}
