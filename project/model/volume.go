package model

import "github.com/compose-spec/compose-go/v2/types"

// VolumeMount is one entry of a service's volumes: compose-go's
// ServiceVolumeConfig with plain JSON (its create_host_path does not survive
// a JSON round trip: true is omitted and comes back false).
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

// Compose returns the mount as compose-go's type, for volmgr's planning.
func (m VolumeMount) Compose() types.ServiceVolumeConfig {
	v := types.ServiceVolumeConfig{Type: m.Type, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, Consistency: m.Consistency}
	if m.HasBind {
		v.Bind = &types.ServiceVolumeBind{Propagation: m.Propagation, CreateHostPath: types.OptOut(m.CreateHostPath), SELinux: m.SELinux, Recursive: m.Recursive}
	}
	if m.NoCopy || m.Subpath != "" {
		v.Volume = &types.ServiceVolumeVolume{NoCopy: m.NoCopy, Subpath: m.Subpath}
	}
	if m.TmpfsSize != 0 || m.TmpfsMode != 0 {
		v.Tmpfs = &types.ServiceVolumeTmpfs{Size: types.UnitBytes(m.TmpfsSize), Mode: m.TmpfsMode}
	}
	return v
}
