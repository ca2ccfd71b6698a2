package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/internal/atomicfile"
)

// validContainerID: a letter or digit, then up to 127 of letters, digits,
// "_", "." and "-".
func validContainerID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// useRecord is containers/ID/image.json: the image a container is made from.
type useRecord struct {
	Image string `json:"image"` // image ID
	Ref   string `json:"ref"`   // as the caller named it
}

func (s *Store) containerDir(id string, elem ...string) string {
	return s.path(append([]string{"containers", id}, elem...)...)
}

func checkContainerID(id string) error {
	if !validContainerID(id) {
		return invalidf("invalid container ID %q", id)
	}
	return nil
}

// Use records that container id is made from the image ref names, so that
// the image cannot be removed (without force) or pruned while the record
// exists. It is idempotent; Mount calls it. RemoveRootfs drops the record.
func (s *Store) Use(containerID, ref string) (*Image, error) {
	if err := checkContainerID(containerID); err != nil {
		return nil, err
	}
	unlockGC, err := s.lock("gc", false)
	if err != nil {
		return nil, err
	}
	defer unlockGC()
	return s.useLocked(containerID, ref)
}

func (s *Store) useLocked(containerID, ref string) (*Image, error) {
	img, err := s.Image(ref)
	if err != nil {
		return nil, err
	}
	if old, err := s.readUse(containerID); err == nil {
		if old.Image != img.ID {
			return nil, conflictf("container %s already uses image %s, not %s", containerID, short(old.Image), short(img.ID))
		}
		return img, nil
	}
	if err := os.MkdirAll(s.containerDir(containerID), 0o700); err != nil {
		return nil, err
	}
	// Replaced by rename but not synced, as the container's own record:
	// the two are written together and are worth as much after a power
	// loss. Syncing the file and its directory was a tenth of Mount's CPU
	// and a few milliseconds on every create.
	data, err := json.Marshal(useRecord{Image: img.ID, Ref: ref})
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(s.containerDir(containerID, "image.json"), append(data, '\n'), 0o600); err != nil {
		return nil, err
	}
	return img, nil
}

func (s *Store) readUse(containerID string) (*useRecord, error) {
	data, err := os.ReadFile(s.containerDir(containerID, "image.json"))
	if err != nil {
		return nil, err
	}
	var u useRecord
	return &u, json.Unmarshal(data, &u)
}

// Users returns the IDs of the containers recorded as using image ID id.
func (s *Store) Users(id string) ([]string, error) {
	ents, err := os.ReadDir(s.path("containers"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		u, err := s.readUse(e.Name())
		if err == nil && u.Image == id {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// ctrLock names the lock of a container's rootfs. Containers share 256
// lock files, which are never removed: a lock file of its own made and
// deleted an inode per container (about 1 ms of CPU each on an ext4
// without journal under churn), and no caller holds two of these locks at
// once, so sharing one costs at most a short wait.
func ctrLock(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "ctr-" + hex.EncodeToString(sum[:1])
}

// RootfsPath is where a container's root filesystem is mounted.
func (s *Store) RootfsPath(containerID string) string {
	return s.containerDir(containerID, "merged")
}

// Mount mounts the container's root filesystem: an overlay of the image's
// layers (read-only, shared) under a per-container upper directory. It
// returns the mount point; mounting an already mounted rootfs returns it too.
// targets are the mount points the runtime will need: those the image lacks
// come from a shared init layer rather than the container's upper directory.
func (s *Store) Mount(ctx context.Context, containerID, imageRef string, targets ...Target) (string, error) {
	if err := checkContainerID(containerID); err != nil {
		return "", err
	}
	unlockGC, err := s.lock("gc", false)
	if err != nil {
		return "", err
	}
	defer unlockGC()
	unlockCtr, err := s.lock(ctrLock(containerID), true)
	if err != nil {
		return "", err
	}
	defer unlockCtr()
	img, err := s.useLocked(containerID, imageRef)
	if err != nil {
		return "", err
	}
	return s.mountLocked(ctx, containerID, img, false, targets)
}

// mountLocked mounts img's layers for containerID, with the init layer of
// targets above them (see initlayer.go); the caller holds the gc lock
// shared and the container's lock. A volatile mount (a
// builder's step) skips overlayfs' sync of the upper filesystem: without
// it, every unmount was a syncfs of the whole filesystem the store is on
// (10-140 ms on this machine's shared disk, where a volatile one took
// 4-6 ms). A step's upper directory gets no more durability than a pulled
// layer's unpacked files, which the store does not sync either.
func (s *Store) mountLocked(ctx context.Context, containerID string, img *Image, volatile bool, targets []Target) (string, error) {
	merged := s.RootfsPath(containerID)
	upper, work := s.containerDir(containerID, "upper"), s.containerDir(containerID, "work")
	for _, d := range []string{upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if ok, err := mountinfo.Mounted(merged); err == nil && ok {
		return merged, nil
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}

	// Top layer first, each layer once (a repeated layer adds nothing below
	// its topmost copy). links are their short names in l/ (see below).
	var dirs, links []string
	seen := map[string]bool{}
	for i := len(img.Layers) - 1; i >= 0; i-- {
		d := img.Layers[i].DiffID
		if seen[d] {
			continue
		}
		seen[d] = true
		if !s.hasLayer(d) {
			return "", fmt.Errorf("image %s: layer %s is missing: %w", short(img.ID), short(d), ErrNotFound)
		}
		dirs = append(dirs, s.LayerDir(d))
		links = append(links, hexOf(d)[:16])
	}
	if len(dirs) == 0 {
		empty := s.path("empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return "", err
		}
		dirs, links = []string{empty}, nil
	}
	if len(targets) > 0 {
		// Without its init layer a container still works: the runtime
		// makes the mount points in its upper directory, as it always did.
		if init, err := s.initLayer(img, dirs, targets); err == nil {
			dirs = append([]string{init}, dirs...)
			if links != nil {
				sum := sha256.Sum256([]byte(filepath.Base(init)))
				links = append([]string{"i" + hex.EncodeToString(sum[:])[:15]}, links...)
			}
		}
	}
	data := overlayData(dirs, upper, work, volatile)
	if len(data) < unix.Getpagesize()-1 || links == nil {
		return merged, mountOverlay(merged, "", dirs, upper, work, volatile)
	}
	// Too long for one page of mount options: name the layers through short
	// symlinks in l/ and mount from there with relative paths.
	for i, link := range links {
		p := s.path("l", link)
		target := dirs[i]
		if cur, err := os.Readlink(p); err != nil || cur != target {
			os.Remove(p)
			if err := os.Symlink(target, p); err != nil {
				return "", err
			}
		}
	}
	if len(overlayData(links, upper, work, volatile)) >= unix.Getpagesize()-1 {
		return "", fmt.Errorf("image %s has %d layers: too many for one overlay mount", short(img.ID), len(links))
	}
	return merged, mountOverlay(merged, s.path("l"), links, upper, work, volatile)
}

// overlayEscape protects the separators of overlay's options in a path.
var overlayEscape = strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`)

func overlayData(lowers []string, upper, work string, volatile bool) string {
	esc := make([]string, len(lowers))
	for i, l := range lowers {
		esc[i] = overlayEscape.Replace(l)
	}
	data := "lowerdir=" + strings.Join(esc, ":") + ",upperdir=" + overlayEscape.Replace(upper) + ",workdir=" + overlayEscape.Replace(work)
	if volatile {
		data += ",volatile"
	}
	return data
}

// mountOverlay mounts overlayfs on target. With a non-empty dir, lowers are
// relative to it: the mount runs on a thread with its own working directory
// (unshare CLONE_FS), which exits afterwards, so the process's cwd is untouched.
// A kernel older than 5.10 refuses volatile (EINVAL): the mount is then
// made without it.
func mountOverlay(target, dir string, lowers []string, upper, work string, volatile bool) error {
	err := mountOverlayData(target, dir, lowers, overlayData(lowers, upper, work, volatile))
	if volatile && errors.Is(err, unix.EINVAL) {
		err = mountOverlayData(target, dir, lowers, overlayData(lowers, upper, work, false))
	}
	return err
}

func mountOverlayData(target, dir string, lowers []string, data string) error {
	if dir == "" {
		if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
			return fmt.Errorf("mount overlay on %s: %w", target, err)
		}
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread's cwd differs from the process's, so
		// the runtime must discard it when this goroutine ends.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare CLONE_FS: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount("overlay", target, "overlay", 0, data)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("mount overlay on %s (%d layers via %s): %w", target, len(lowers), dir, err)
	}
	return nil
}

// Unmount unmounts the container's root filesystem. Unmounting one that is
// not mounted (or a container the store never saw) succeeds.
func (s *Store) Unmount(containerID string) error {
	if err := checkContainerID(containerID); err != nil {
		return err
	}
	unlock, err := s.lock(ctrLock(containerID), true)
	if err != nil {
		return err
	}
	defer unlock()
	return s.unmountLocked(containerID)
}

func (s *Store) unmountLocked(containerID string) error {
	merged := s.RootfsPath(containerID)
	for range 8 {
		ok, err := mountinfo.Mounted(merged)
		if errors.Is(err, os.ErrNotExist) || (err == nil && !ok) {
			return nil
		}
		err = unix.Unmount(merged, 0)
		switch err {
		case nil, unix.EINVAL, unix.ENOENT:
			continue // check again: mounts may be stacked
		case unix.EBUSY:
			// Something still has it open (a process being torn down): detach
			// it so the directory can go; the kernel frees it when released.
			if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", merged, err)
			}
		default:
			return fmt.Errorf("unmount %s: %w", merged, err)
		}
	}
	return nil
}

// RemoveRootfs unmounts and deletes the container's root filesystem (its
// writable layer) and its use record. It is idempotent.
func (s *Store) RemoveRootfs(containerID string) error {
	if err := checkContainerID(containerID); err != nil {
		return err
	}
	unlock, err := s.lock(ctrLock(containerID), true)
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.unmountLocked(containerID); err != nil {
		return err
	}
	// The lock file of its own that a container had before ctrLock.
	_ = os.Remove(s.path("locks", "ctr-"+containerID))
	dir := s.containerDir(containerID)
	// Rename first so a half-deleted directory is never taken for a rootfs.
	gone := s.path("tmp", "rm-"+containerID)
	if err := os.RemoveAll(gone); err != nil {
		return err
	}
	if err := os.Rename(dir, gone); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(gone)
}

// Release is RemoveRootfs: the container no longer needs its image.
func (s *Store) Release(containerID string) error { return s.RemoveRootfs(containerID) }
