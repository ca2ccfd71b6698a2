package volmgr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berthrun/berth/project/model"
)

// Mount is one mount of a container, as the engine takes it.
type Mount struct {
	// Source is the host path to bind ("tmpfs" for a tmpfs). For a volume
	// it is <root>/<name>/_data until Prepare replaces it with what
	// Manager.Use returns.
	Source      string
	Destination string
	// Type is "bind" or "tmpfs"; volumes are bind mounts of their data.
	Type string
	// Options are OCI mount options: "rbind" or "bind", the propagation
	// ("rprivate" unless asked otherwise), "ro", and for a tmpfs "size=N"
	// (bytes) and "mode=NNNN". The engine adds Docker's tmpfs defaults
	// (noexec, nosuid, nodev).
	Options []string
	// CopyUp asks for the image's content at Destination to be copied into
	// the volume when the volume is empty (volume.nocopy turns it off).
	CopyUp bool
	// Volume is the name of the volume behind the mount, "" for a host
	// bind or a tmpfs.
	Volume string
	// Anonymous marks an anonymous volume (`- /data`); Prepare creates it
	// when Volume is empty.
	Anonymous bool
	// Subpath is a path inside the volume to mount instead of its root
	// (volume.subpath).
	Subpath string
}

// ReadOnly reports whether the mount is read-only.
func (m Mount) ReadOnly() bool { return slices.Contains(m.Options, "ro") }

// Propagation returns the mount's propagation option, "rprivate" if none.
func (m Mount) Propagation() string {
	for _, o := range m.Options {
		if _, ok := propagations[o]; ok {
			return o
		}
	}
	return "rprivate"
}

var propagations = map[string]struct{}{
	"private": {}, "rprivate": {}, "shared": {}, "rshared": {}, "slave": {}, "rslave": {},
}

// VolumesFrom is one resolved `volumes_from` entry: the mounts of the service
// or container named there, and the mode the entry asked for.
type VolumesFrom struct {
	Mounts []Mount
	// Mode is "ro", "rw", or "" to keep each mount's own mode.
	Mode string
}

// PlanInput is what PlanMounts needs.
type PlanInput struct {
	// VolumesRoot is $BERTH_ROOT/volumes.
	VolumesRoot string
	// Volumes are the service's volumes as compose-go loaded them (short
	// syntax normalised, relative bind sources made absolute), in the
	// model's form.
	Volumes []model.VolumeMount
	// VolumesFrom are the service's volumes_from entries, resolved.
	VolumesFrom []VolumesFrom
	// VolumeName maps a compose volume key to the volume's name
	// ("<project>_<key>", or the name given with name: or external).
	// nil keeps keys as they are.
	VolumeName func(key string) string
	// HomeDir expands a leading "~" in bind sources; "" uses $HOME.
	HomeDir string
}

// PlanMounts turns a service's volumes and volumes_from into mounts. It is a
// function of its input except for bind sources: it looks at the host path
// and, for the short syntax (bind.create_host_path, which compose-go sets on
// `./dir:/path`), creates a missing one as a directory, as `docker run -v`
// does. The long syntax without create_host_path wants the path to exist.
//
// Mounts from volumes_from come first; the service's own mounts replace any
// of them on the same destination. Two of the service's own mounts on one
// destination are an error.
func PlanMounts(in PlanInput) ([]Mount, error) {
	var out []Mount
	index := map[string]int{}
	for _, vf := range in.VolumesFrom {
		for _, m := range vf.Mounts {
			if m.Type == model.VolumeTypeTmpfs {
				continue // Docker shares volumes and binds, not tmpfs
			}
			m.Options = slices.Clone(m.Options)
			switch vf.Mode {
			case "ro":
				m.Options = setReadOnly(m.Options, true)
			case "rw":
				m.Options = setReadOnly(m.Options, false)
			case "":
			default:
				return nil, invalidf("volumes_from: invalid mode %q (ro or rw)", vf.Mode)
			}
			// The volume is already in use, hence filled: never copy again,
			// and never make a second anonymous volume for it.
			m.CopyUp = false
			m.Anonymous = false
			if i, ok := index[m.Destination]; ok {
				out[i] = m
				continue
			}
			index[m.Destination] = len(out)
			out = append(out, m)
		}
	}
	inherited := len(out)
	for _, v := range in.Volumes {
		m, err := planOne(in, v)
		if err != nil {
			return nil, err
		}
		if i, ok := index[m.Destination]; ok {
			if i >= inherited {
				return nil, invalidf("duplicate mount point: %s", m.Destination)
			}
			out[i] = m
			continue
		}
		index[m.Destination] = len(out)
		out = append(out, m)
	}
	return out, nil
}

func setReadOnly(opts []string, ro bool) []string {
	opts = slices.DeleteFunc(opts, func(o string) bool { return o == "ro" || o == "rw" || o == "rro" })
	if ro {
		opts = append(opts, "ro")
	}
	return opts
}

func planOne(in PlanInput, v model.VolumeMount) (Mount, error) {
	if v.Target == "" || !path.IsAbs(v.Target) {
		return Mount{}, invalidf("volume %q: the mount path must be absolute", v.Target)
	}
	m := Mount{Destination: path.Clean(v.Target)}
	switch v.Type {
	case model.VolumeTypeBind:
		return planBind(in, v, m)
	case model.VolumeTypeVolume:
		m.Type = "bind"
		m.Options = []string{"rbind", "rprivate"}
		if v.ReadOnly {
			m.Options = append(m.Options, "ro")
		}
		m.CopyUp = !v.NoCopy
		if v.Subpath != "" {
			m.Subpath = v.Subpath
			m.CopyUp = false // Docker copies into a whole volume only
		}
		if v.Source == "" {
			m.Anonymous = true
			return m, nil
		}
		name := v.Source
		if in.VolumeName != nil {
			name = in.VolumeName(v.Source)
		}
		if err := ValidateName(name); err != nil {
			return Mount{}, fmt.Errorf("volume %s:%s: %w", v.Source, v.Target, err)
		}
		m.Volume = name
		m.Source = filepath.Join(in.VolumesRoot, name, dataDir)
		return m, nil
	case model.VolumeTypeTmpfs:
		if v.Source != "" {
			return Mount{}, invalidf("tmpfs %s: a tmpfs has no source (got %q)", v.Target, v.Source)
		}
		m.Type, m.Source = "tmpfs", "tmpfs"
		if v.ReadOnly {
			m.Options = append(m.Options, "ro")
		}
		if v.TmpfsSize < 0 {
			return Mount{}, invalidf("tmpfs %s: negative size", v.Target)
		}
		if v.TmpfsSize > 0 {
			m.Options = append(m.Options, fmt.Sprintf("size=%d", v.TmpfsSize))
		}
		if v.TmpfsMode != 0 {
			if v.TmpfsMode&^0o7777 != 0 {
				return Mount{}, invalidf("tmpfs %s: invalid mode %o", v.Target, v.TmpfsMode)
			}
			m.Options = append(m.Options, fmt.Sprintf("mode=%04o", v.TmpfsMode))
		}
		return m, nil
	case model.VolumeTypeImage, model.VolumeTypeNamedPipe, model.VolumeTypeCluster:
		return Mount{}, unsupportedf("volume %s: type %q is unsupported by berth", v.Target, v.Type)
	default:
		return Mount{}, invalidf("volume %s: unknown type %q", v.Target, v.Type)
	}
}

func planBind(in PlanInput, v model.VolumeMount, m Mount) (Mount, error) {
	src := v.Source
	if src == "~" || strings.HasPrefix(src, "~/") {
		home := in.HomeDir
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return Mount{}, fmt.Errorf("bind %s: %w", src, err)
			}
			home = h
		}
		src = filepath.Join(home, strings.TrimPrefix(src, "~"))
	}
	if !filepath.IsAbs(src) {
		return Mount{}, invalidf("bind %s:%s: the host path must be absolute", v.Source, v.Target)
	}
	src = filepath.Clean(src)
	create := v.HasBind && v.CreateHostPath
	if _, err := os.Stat(src); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return Mount{}, fmt.Errorf("bind %s: %w", src, err)
		}
		if !create {
			return Mount{}, fmt.Errorf("invalid mount config for type \"bind\": bind source path does not exist: %s (set bind.create_host_path: true to create it): %w", src, fs.ErrNotExist)
		}
		if err := os.MkdirAll(src, 0o755); err != nil {
			return Mount{}, fmt.Errorf("bind %s: create host path: %w", src, err)
		}
	}
	m.Type, m.Source = "bind", src
	bindOpt, prop := "rbind", "rprivate"
	ro := v.ReadOnly
	var rro bool
	if v.HasBind {
		if v.Propagation != "" {
			if _, ok := propagations[v.Propagation]; !ok {
				return Mount{}, invalidf("bind %s: invalid propagation %q (private, rprivate, shared, rshared, slave, rslave)", v.Target, v.Propagation)
			}
			prop = v.Propagation
		}
		switch v.Recursive {
		case "", "enabled", "writable":
		case "disabled":
			bindOpt = "bind"
		case "readonly":
			if !ro {
				return Mount{}, invalidf("bind %s: recursive: readonly needs read_only: true", v.Target)
			}
			rro = true
		default:
			return Mount{}, invalidf("bind %s: invalid recursive %q (enabled, disabled, writable, readonly)", v.Target, v.Recursive)
		}
		// bind.selinux (z, Z) relabels for SELinux, which Debian does not
		// enforce: accepted, nothing to do.
	}
	// consistency is a Docker Desktop (macOS) hint: accepted and ignored.
	m.Options = []string{bindOpt, prop}
	if ro {
		m.Options = append(m.Options, "ro")
	}
	if rro {
		m.Options = append(m.Options, "rro")
	}
	return m, nil
}
