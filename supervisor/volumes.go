package supervisor

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/volmgr"
)

// checkVolumes fails, before anything is created, when a service uses an
// external volume that does not exist.
func (s *Supervisor) checkVolumes(m *model.Model, services []string) error {
	for _, name := range services {
		svc, _ := m.Service(name)
		for _, v := range svc.Volumes {
			if v.Type != model.VolumeTypeVolume || v.Source == "" {
				continue
			}
			vol, ok := m.Volumes[v.Source]
			if !ok || !vol.External {
				continue
			}
			if _, err := s.volumes.External(vol.Name); err != nil {
				return fmt.Errorf("service %q: %w", name, err)
			}
		}
	}
	return nil
}

// ensureVolumes creates the project's named volumes that the services use.
func (s *Supervisor) ensureVolumes(m *model.Model, services []string, progress func(Event)) error {
	used := map[string]bool{}
	for _, name := range services {
		svc, _ := m.Service(name)
		for _, v := range svc.Volumes {
			if v.Type == model.VolumeTypeVolume && v.Source != "" {
				used[v.Source] = true
			}
		}
	}
	keys := sortedKeys(used)
	for _, key := range keys {
		vol, ok := m.Volumes[key]
		if !ok || vol.External {
			continue
		}
		labels := map[string]string{}
		for k, v := range vol.Labels {
			labels[k] = v
		}
		labels[volmgr.LabelProject] = s.project
		labels[volmgr.LabelVolume] = key
		v, created, err := s.volumes.Ensure(volmgr.VolumeSpec{Name: vol.Name, Driver: vol.Driver, Labels: labels, DriverOpts: vol.DriverOpts})
		if err != nil {
			return fmt.Errorf("volume %q: %w", vol.Name, err)
		}
		if created {
			progress(Event{Action: "Created", Object: fmt.Sprintf("Volume %q", vol.Name)})
		} else if w := v.Warning(s.project); w != "" {
			progress(Event{Action: "warning", Message: w})
		}
	}
	return nil
}

// prepareMounts plans and prepares the volumes and binds of a new container:
// anonymous volumes for the image's VOLUME paths that the service does not
// mount, volumes_from resolved from the other containers' records, and
// anonymous volumes inherited from the container it replaces.
func (s *Supervisor) prepareMounts(m *model.Model, svc *model.Service, img *image.Image, id, rootfs string, inherit map[string]string) ([]volmgr.Mount, error) {
	vols := slices.Clone(svc.Volumes)
	covered := map[string]bool{}
	for _, v := range vols {
		covered[v.Target] = true
	}
	for _, path := range img.Config.Volumes {
		if !covered[path] {
			vols = append(vols, model.VolumeMount{Type: model.VolumeTypeVolume, Target: path})
		}
	}
	from, err := s.volumesFrom(svc)
	if err != nil {
		return nil, err
	}
	planned, err := volmgr.PlanMounts(volmgr.PlanInput{
		VolumesRoot: s.volumes.Root(),
		Volumes:     vols,
		VolumesFrom: from,
		VolumeName: func(key string) string {
			if v, ok := m.Volumes[key]; ok {
				return v.Name
			}
			return m.Name + "_" + key
		},
	})
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", svc.Name, err)
	}
	for i := range planned {
		if planned[i].Anonymous && planned[i].Volume == "" {
			planned[i].Volume = inherit[planned[i].Destination]
		}
	}
	prepared, err := s.volumes.Prepare(id, s.project, rootfs, planned)
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", svc.Name, err)
	}
	return prepared, nil
}

// volumesFrom resolves `volumes_from: [service:NAME[:ro], container:NAME[:ro], NAME]`
// to the mounts of those containers (a service's first replica).
func (s *Supervisor) volumesFrom(svc *model.Service) ([]volmgr.VolumesFrom, error) {
	var out []volmgr.VolumesFrom
	for _, entry := range svc.VolumesFrom {
		parts := strings.Split(entry, ":")
		kind, name, mode := "service", parts[0], ""
		if len(parts) >= 2 && (parts[0] == "service" || parts[0] == "container") {
			kind, name = parts[0], parts[1]
			parts = parts[2:]
		} else {
			parts = parts[1:]
		}
		if len(parts) > 0 {
			mode = parts[0]
		}
		src := s.lookup(kind, name)
		if src == nil {
			return nil, fmt.Errorf("volumes_from %q: no such %s", entry, kind)
		}
		out = append(out, volmgr.VolumesFrom{Mounts: src.record().Mounts, Mode: mode})
	}
	return out, nil
}

// engineMounts turns prepared mounts into the runtime's bind mounts and tmpfs.
func engineMounts(spec *runtime.Spec, mounts []volmgr.Mount) {
	for _, m := range mounts {
		if m.Type == model.VolumeTypeTmpfs {
			if spec.Tmpfs == nil {
				spec.Tmpfs = map[string]string{}
			}
			var opts []string
			for _, o := range m.Options {
				if o != "rbind" && o != "bind" && !strings.HasSuffix(o, "private") && !strings.HasSuffix(o, "shared") && !strings.HasSuffix(o, "slave") {
					opts = append(opts, o)
				}
			}
			spec.Tmpfs[m.Destination] = strings.Join(opts, ",")
			continue
		}
		spec.Mounts = append(spec.Mounts, runtime.Mount{
			Source:      m.Source,
			Destination: m.Destination,
			ReadOnly:    m.ReadOnly(),
			Propagation: m.Propagation(),
		})
	}
	// Parents before children, so /data is mounted before /data/cache.
	sort.SliceStable(spec.Mounts, func(i, j int) bool {
		return strings.Count(spec.Mounts[i].Destination, "/") < strings.Count(spec.Mounts[j].Destination, "/")
	})
}

// anonymousVolumes maps a container's anonymous volume mounts by destination.
func anonymousVolumes(r *Record) map[string]string {
	out := map[string]string{}
	for _, m := range r.Mounts {
		if m.Anonymous && m.Volume != "" {
			out[m.Destination] = m.Volume
		}
	}
	return out
}

// removeProjectVolumes is down -v: the project's named volumes, never an
// external one.
func (s *Supervisor) removeProjectVolumes(names []string, progress func(Event)) error {
	if len(names) == 0 {
		vols, err := s.volumes.List(volmgr.Filters{Labels: []string{volmgr.LabelProject + "=" + s.project}})
		if err != nil {
			return err
		}
		for _, v := range vols {
			// Anonymous volumes go with their containers, but for those
			// a recreate interrupted by a crash left to no container.
			if !v.Anonymous() || v.Heir != nil && !v.InUse() {
				names = append(names, v.Name)
			}
		}
	}
	removed, err := s.volumes.RemoveProjectVolumes(s.project, names)
	for _, n := range removed {
		progress(Event{Action: "Removed", Object: "Volume " + n})
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
