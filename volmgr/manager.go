// Package volmgr manages berth's volumes: named volumes under
// $BERTH_ROOT/volumes (plain directories, host directories with
// driver_opts o=bind, or tmpfs), external and anonymous volumes, the mounts a
// compose service's volumes turn into, and copy-up of image content into an
// empty volume.
//
// Each volume is a directory <root>/<name> holding _data and volume.json.
// Metadata is replaced atomically, so reads take no lock; every change takes
// an exclusive flock on <root>/.lock, because several berth processes (CLI
// commands, one supervisor per project) share the root.
//
// volmgr never creates nor removes an external volume: External only looks,
// and RemoveProjectVolumes removes only volumes labelled with the project.
package volmgr

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/internal/atomicfile"
	"github.com/berthrun/berth/internal/flock"
)

// Manager manages the volumes under one root directory.
type Manager struct {
	root string
}

// New returns a Manager over root ($BERTH_ROOT/volumes), creating it if needed.
func New(root string) (*Manager, error) {
	if !filepath.IsAbs(root) {
		abs, err := filepath.Abs(root)
		if err != nil {
			return nil, err
		}
		root = abs
	}
	// 0700: containers reach their volumes through bind mounts; host users
	// must not reach files (setuid ones included) that containers wrote.
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("volume root: %w", err)
	}
	return &Manager{root: root}, nil
}

// Root returns the directory that holds the volumes.
func (m *Manager) Root() string { return m.root }

// DataPath returns <root>/<name>/_data, where a named volume's data lives.
func (m *Manager) DataPath(name string) string {
	return filepath.Join(m.root, name, dataDir)
}

func (m *Manager) dir(name string) string { return filepath.Join(m.root, name) }

// lock takes the root's exclusive lock; call the returned func to drop it.
func (m *Manager) lock() (func(), error) {
	return lockFile(filepath.Join(m.root, ".lock"))
}

// lockFile takes an exclusive lock on path, waiting as long as it takes.
func lockFile(path string) (func(), error) {
	l, err := flock.Exclusive(context.Background(), path)
	if err != nil {
		return nil, err
	}
	return func() { l.Unlock() }, nil
}

// Create creates a volume, or returns the existing one of that name:
// creating is idempotent, as `docker volume create` is. See Ensure.
func (m *Manager) Create(spec VolumeSpec) (*Volume, error) {
	v, _, err := m.Ensure(spec)
	return v, err
}

// Ensure is Create that also says whether the volume was created now.
//
// An existing volume is returned as it is, whatever its labels; callers that
// act for a compose project print v.Warning(project) when it is not empty.
// An existing volume with other driver options is an ErrAlreadyExists error:
// silently handing over a plain directory where a tmpfs was asked for would
// be worse. An empty name gets a random one and the anonymous label, as
// `docker volume create` with no name does.
func (m *Manager) Ensure(spec VolumeSpec) (*Volume, bool, error) {
	if spec.Driver != "" && spec.Driver != DriverLocal {
		return nil, false, unsupportedf("volume driver %q is unsupported: berth has the %q driver only", spec.Driver, DriverLocal)
	}
	labels := maps.Clone(spec.Labels)
	if spec.Name == "" {
		spec.Name = randomName()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelAnonymous] = ""
	}
	if err := ValidateName(spec.Name); err != nil {
		return nil, false, err
	}
	if _, err := parseDriverOpts(spec.DriverOpts); err != nil {
		return nil, false, fmt.Errorf("create volume %s: %w", spec.Name, err)
	}
	unlock, err := m.lock()
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if v, err := readVolume(m.dir(spec.Name)); err == nil {
		if !maps.Equal(v.DriverOpts, spec.DriverOpts) {
			return v, false, existsf("volume %q already exists with driver options [%s], not [%s]", v.Name, formatOpts(v.DriverOpts), formatOpts(spec.DriverOpts))
		}
		return v, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	v := &Volume{
		Name:       spec.Name,
		Driver:     DriverLocal,
		Labels:     labels,
		DriverOpts: maps.Clone(spec.DriverOpts),
		CreatedAt:  time.Now().UTC().Truncate(time.Second),
		Scope:      "local",
	}
	if err := m.createLocked(v); err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// createLocked builds the volume in a temporary directory and renames it into
// place, so that no reader ever sees a volume without its metadata.
func (m *Manager) createLocked(v *Volume) error {
	tmp, err := os.MkdirTemp(m.root, ".new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // gone once renamed
	if err := os.Chmod(tmp, 0o701); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(tmp, dataDir), 0o755); err != nil {
		return err
	}
	v.Mountpoint = m.DataPath(v.Name)
	if err := writeVolume(tmp, v); err != nil {
		return err
	}
	if err := os.Rename(tmp, m.dir(v.Name)); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return existsf("volume %q already exists", v.Name)
		}
		return err
	}
	return atomicfile.SyncDir(m.root)
}

// Inspect returns the volume called name.
func (m *Manager) Inspect(name string) (*Volume, error) {
	if err := ValidateName(name); err != nil {
		return nil, &NotFoundError{Name: name}
	}
	v, err := readVolume(m.dir(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &NotFoundError{Name: name}
	}
	return v, err
}

// External returns the volume a compose file declared external, or an
// ErrNotFound error that tells the user how to create it. It never creates
// anything.
func (m *Manager) External(name string) (*Volume, error) {
	v, err := m.Inspect(name)
	if errors.Is(err, ErrNotFound) {
		return nil, &NotFoundError{Name: name, External: true}
	}
	return v, err
}

// List returns the volumes that pass f, sorted by name.
func (m *Manager) List(f Filters) ([]*Volume, error) {
	all, err := m.list()
	if err != nil {
		return nil, err
	}
	var out []*Volume
	for _, v := range all {
		if f.Match(v) {
			out = append(out, v)
		}
	}
	return out, nil
}

func (m *Manager) list() ([]*Volume, error) {
	entries, err := os.ReadDir(m.root)
	if err != nil {
		return nil, err
	}
	var out []*Volume
	for _, e := range entries {
		// Dot names are berth's own (.lock, .new-*, .gone-*); they are not
		// valid volume names.
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		v, err := readVolume(m.dir(e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove removes a volume and its data. A volume that a container uses is
// refused with an ErrInUse error, force or not; force only makes a missing
// volume not an error (`docker volume rm -f`). The directory behind a volume
// created with o=bind is left alone: only berth's record of it goes.
func (m *Manager) Remove(name string, force bool) error {
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	v, err := m.Inspect(name)
	if err != nil {
		if force && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	if v.InUse() {
		return &InUseError{Name: name, Containers: v.Users}
	}
	return m.removeLocked(v)
}

// removeLocked renames the volume out of sight, then deletes it.
func (m *Manager) removeLocked(v *Volume) error {
	dir := m.dir(v.Name)
	// Whatever is mounted on _data (a tmpfs) must not be walked into.
	if err := unmountAll(filepath.Join(dir, dataDir)); err != nil {
		return fmt.Errorf("remove %s: %w", v.Name, err)
	}
	gone, err := os.MkdirTemp(m.root, ".gone-")
	if err != nil {
		return err
	}
	target := filepath.Join(gone, "v")
	if err := os.Rename(dir, target); err != nil {
		os.Remove(gone)
		return fmt.Errorf("remove %s: %w", v.Name, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove %s: %w", v.Name, err)
	}
	return nil
}

// RemoveProjectVolumes removes the named volumes of a project for `down -v`.
// A volume is removed only if its com.docker.compose.project label names
// project: external volumes, which berth did not create for this project,
// are skipped even when their name is passed. Missing volumes are skipped;
// volumes in use are left and reported (errors.Is(err, ErrInUse)).
func (m *Manager) RemoveProjectVolumes(project string, names []string) ([]string, error) {
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var removed []string
	var errs []error
	for _, name := range names {
		v, err := m.Inspect(name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if project == "" || v.Labels[LabelProject] != project {
			continue
		}
		if v.InUse() {
			errs = append(errs, &InUseError{Name: name, Containers: v.Users})
			continue
		}
		if err := m.removeLocked(v); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// PruneOptions select what Prune removes.
type PruneOptions struct {
	// All removes unused named volumes too. Without it only anonymous
	// volumes go, as since Docker 23.
	All bool
	// Filters: label and label! apply (see Filters).
	Filters Filters
}

// Prune removes the unused volumes opts selects and returns their names and
// the bytes their data took.
func (m *Manager) Prune(opts PruneOptions) ([]string, uint64, error) {
	unlock, err := m.lock()
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	all, err := m.list()
	if err != nil {
		return nil, 0, err
	}
	var removed []string
	var reclaimed uint64
	var errs []error
	for _, v := range all {
		if v.InUse() || !opts.Filters.Match(v) {
			continue
		}
		if !opts.All && !opts.Filters.All && !v.Anonymous() {
			continue
		}
		size := dirSize(v.Mountpoint)
		if err := m.removeLocked(v); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, v.Name)
		reclaimed += size
	}
	return removed, reclaimed, errors.Join(errs...)
}

// dirSize adds up the sizes of the regular files under dir, each inode once,
// without leaving dir's file system.
func dirSize(dir string) uint64 {
	var top unix.Stat_t
	if err := unix.Lstat(dir, &top); err != nil {
		return 0
	}
	seen := map[uint64]bool{}
	var total uint64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(path, &st) != nil {
			return nil
		}
		if st.Dev != top.Dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG && !seen[st.Ino] {
			seen[st.Ino] = true
			total += uint64(st.Size)
		}
		return nil
	})
	return total
}

// CreateAnonymous creates an anonymous volume for a container: a random
// 64-hex name, the project label and com.docker.volume.anonymous. The
// container is recorded as its owner and first user; ReleaseAll with
// removeAnonymous removes it (`rm -v`, `down -v`).
func (m *Manager) CreateAnonymous(project, containerID string) (*Volume, error) {
	labels := map[string]string{LabelAnonymous: ""}
	if project != "" {
		labels[LabelProject] = project
	}
	v := &Volume{
		Name:      randomName(),
		Driver:    DriverLocal,
		Labels:    labels,
		CreatedAt: time.Now().UTC().Truncate(time.Second),
		Scope:     "local",
		Owner:     containerID,
	}
	if containerID != "" {
		v.Users = []string{containerID}
	}
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := m.createLocked(v); err != nil {
		return nil, err
	}
	return v, nil
}

// Use records that containerID uses the volume and returns the host path to
// bind into the container: _data, the device of an o=bind volume (an error
// if it is missing), or _data with the volume's tmpfs mounted on it (mounted
// by the first user, shared by all, unmounted by Release when the last user
// goes, as Docker's local driver does). Use is idempotent.
func (m *Manager) Use(name, containerID string) (string, error) {
	unlock, err := m.lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	return m.useLocked(name, containerID, false)
}

func (m *Manager) useLocked(name, containerID string, adopt bool) (string, error) {
	if containerID == "" {
		return "", invalidf("use volume %s: empty container ID", name)
	}
	v, err := m.Inspect(name)
	if err != nil {
		return "", err
	}
	c, err := parseDriverOpts(v.DriverOpts)
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	src := v.Mountpoint
	switch c.kind {
	case kindBind:
		st, err := os.Stat(c.device)
		if err != nil {
			return "", fmt.Errorf("volume %s: device %s: %w", name, c.device, err)
		}
		if !st.IsDir() {
			return "", fmt.Errorf("volume %s: device %s is not a directory", name, c.device)
		}
		src = c.device
	case kindTmpfs:
		if err := mountTmpfs(c, v.Mountpoint); err != nil {
			return "", fmt.Errorf("volume %s: %w", name, err)
		}
	}
	changed := false
	if !slices.Contains(v.Users, containerID) {
		v.Users = append(v.Users, containerID)
		changed = true
	}
	if adopt && v.Anonymous() && v.Owner != containerID {
		v.Owner = containerID
		changed = true
	}
	if changed {
		if err := writeVolume(m.dir(name), v); err != nil {
			if c.kind == kindTmpfs && len(v.Users) == 1 {
				unmountAll(v.Mountpoint)
			}
			return "", err
		}
	}
	return src, nil
}

// Release records that containerID no longer uses the volume; the last user
// of a tmpfs volume unmounts it (its content is gone). Releasing a volume
// that is not used, or that does not exist, is not an error.
func (m *Manager) Release(name, containerID string) error {
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	v, err := m.Inspect(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return m.releaseLocked(v, containerID)
}

func (m *Manager) releaseLocked(v *Volume, containerID string) error {
	i := slices.Index(v.Users, containerID)
	if i >= 0 {
		v.Users = slices.Delete(v.Users, i, i+1)
		if err := writeVolume(m.dir(v.Name), v); err != nil {
			return err
		}
	}
	if len(v.Users) == 0 {
		if c, err := parseDriverOpts(v.DriverOpts); err == nil && c.kind == kindTmpfs {
			return unmountAll(v.Mountpoint)
		}
	}
	return nil
}

// ReleaseAll releases every volume containerID uses, for a container being
// removed. With removeAnonymous (`rm -v`, `down -v`) it then removes the
// anonymous volumes created for that container that nobody else uses, and
// returns their names.
func (m *Manager) ReleaseAll(containerID string, removeAnonymous bool) ([]string, error) {
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	all, err := m.list()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, v := range all {
		if slices.Contains(v.Users, containerID) {
			if err := m.releaseLocked(v, containerID); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if removeAnonymous && v.Anonymous() && v.Owner == containerID && !v.InUse() {
			if err := m.removeLocked(v); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, v.Name)
		}
	}
	return removed, errors.Join(errs...)
}

// Bequeath marks the anonymous volumes of a container about to be recreated
// (destination → volume name) as passing to replica number of service. It
// is written before the old container goes, so that a supervisor killed
// between removing it and creating its successor leaves the volumes to the
// next create of that replica (Bequeathed) instead of to nobody; `down -v`
// removes such volumes too. Settle ends the handover.
func (m *Manager) Bequeath(volumes map[string]string, service string, number int) error {
	return m.setHeirs(volumes, func(dest string) *Heir {
		return &Heir{Service: service, Number: number, Destination: dest}
	})
}

// Settle ends the handover of volumes (destination → name) to the container
// that now uses them.
func (m *Manager) Settle(volumes map[string]string) error {
	return m.setHeirs(volumes, func(string) *Heir { return nil })
}

func (m *Manager) setHeirs(volumes map[string]string, heir func(dest string) *Heir) error {
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	for dest, name := range volumes {
		v, err := m.Inspect(name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		h := heir(dest)
		if h == nil && v.Heir == nil {
			continue
		}
		v.Heir = h
		if err := writeVolume(m.dir(name), v); err != nil {
			return err
		}
	}
	return nil
}

// Bequeathed returns the unused anonymous volumes of project that passed to
// replica number of service (destination → volume name).
func (m *Manager) Bequeathed(project, service string, number int) (map[string]string, error) {
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	all, err := m.list()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, v := range all {
		if h := v.Heir; h != nil && v.Anonymous() && !v.InUse() && v.Labels[LabelProject] == project &&
			h.Service == service && h.Number == number {
			out[h.Destination] = v.Name
		}
	}
	return out, nil
}

// CopyUp copies the content of destination in rootfs into the volume when the
// volume is empty (see the CopyUp function). Containers starting at once on
// the same volume copy one at a time; the second finds the volume filled.
// Call it after Use, which mounts a tmpfs volume.
func (m *Manager) CopyUp(name, rootfs, destination string) error {
	v, err := m.Inspect(name)
	if err != nil {
		return err
	}
	c, err := parseDriverOpts(v.DriverOpts)
	if err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	data := v.Mountpoint
	if c.kind == kindBind {
		data = c.device
	}
	unlock, err := lockFile(filepath.Join(m.dir(name), ".copyup.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if err := CopyUp(rootfs, destination, data); err != nil {
		return fmt.Errorf("copy %s into volume %s: %w", destination, name, err)
	}
	return nil
}

// Prepare turns planned mounts (see PlanMounts) into mounts the engine can
// use for containerID: it creates the anonymous volumes, records the
// container as a user of every volume (Use), fills in the sources, resolves
// volume subpaths, and, when rootfs is not empty, copies the image's content
// into empty volumes whose mount asks for it. On error, what it did is undone.
//
// A mount with Anonymous set and Volume empty gets a new anonymous volume; one
// with Anonymous and Volume set reuses that volume (a recreated container
// keeps its predecessor's anonymous volumes) and becomes its owner.
func (m *Manager) Prepare(containerID, project, rootfs string, mounts []Mount) (_ []Mount, err error) {
	out := slices.Clone(mounts)
	var used, created []string
	defer func() {
		if err == nil {
			return
		}
		for _, name := range used {
			m.Release(name, containerID)
		}
		for _, name := range created {
			m.Remove(name, true)
		}
	}()
	for i := range out {
		mt := &out[i]
		if mt.Volume == "" && !mt.Anonymous {
			continue
		}
		if mt.Volume == "" {
			v, err := m.CreateAnonymous(project, containerID)
			if err != nil {
				return nil, err
			}
			mt.Volume = v.Name
			created = append(created, v.Name)
		}
		unlock, err := m.lock()
		if err != nil {
			return nil, err
		}
		src, err := m.useLocked(mt.Volume, containerID, mt.Anonymous)
		unlock()
		if err != nil {
			return nil, err
		}
		used = append(used, mt.Volume)
		if mt.Subpath != "" {
			// Resolved inside the volume: a symlink in it cannot point the
			// mount at the host.
			p, err := securejoin.SecureJoin(src, mt.Subpath)
			if err != nil {
				return nil, fmt.Errorf("volume %s: subpath %s: %w", mt.Volume, mt.Subpath, err)
			}
			if _, err := os.Lstat(p); err != nil {
				return nil, fmt.Errorf("volume %s: subpath %s: %w", mt.Volume, mt.Subpath, err)
			}
			src = p
		}
		mt.Source = src
		if mt.CopyUp && rootfs != "" && mt.Subpath == "" {
			if err := m.CopyUp(mt.Volume, rootfs, mt.Destination); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
