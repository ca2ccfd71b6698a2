package image

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Removal is one line of `image rm` / `image prune` output: a tag removed or
// an image deleted.
type Removal struct {
	Untagged string `json:"Untagged,omitempty"` // canonical repo:tag
	Deleted  string `json:"Deleted,omitempty"`  // image ID
}

// Remove untags ref and deletes the image once no tag is left, as docker rmi.
// An image used by a container is kept: without force that is an error
// (InUseError); with force the tag goes and the image stays, untagged, until
// its last container is removed. Layers no image needs are deleted.
func (s *Store) Remove(ref string, force bool) ([]Removal, error) {
	unlockGC, err := s.lock("gc", true)
	if err != nil {
		return nil, err
	}
	defer unlockGC()
	id, tagKey, err := s.resolve(ref)
	if err != nil {
		return nil, err
	}
	users, err := s.Users(id)
	if err != nil {
		return nil, err
	}
	refs, err := s.readRefs()
	if err != nil {
		return nil, err
	}
	tags := tagsOf(refs, id)

	var untag []string
	switch {
	case tagKey != "" && len(tags) > 1:
		untag = []string{tagKey} // other names remain: only the tag goes
	case tagKey != "":
		if len(users) > 0 && !force {
			return nil, &InUseError{Ref: ref, ID: id, Containers: users}
		}
		untag = []string{tagKey}
	default: // by ID
		if len(tags) > 1 && !force {
			return nil, conflictf("unable to delete %s (must be forced) - image is referenced in multiple repositories", short(id))
		}
		if len(users) > 0 && !force {
			return nil, conflictf("unable to delete %s (must be forced) - image is being used by container %s", short(id), short(users[0]))
		}
		untag = tags
	}
	var out []Removal
	err = s.updateRefs(func(refs map[string]string) error {
		for _, t := range untag {
			delete(refs, t)
			out = append(out, Removal{Untagged: t})
		}
		if len(tagsOf(refs, id)) > 0 || len(users) > 0 {
			return nil
		}
		if err := os.Remove(s.path("images", hexOf(id)+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		out = append(out, Removal{Deleted: id})
		return nil
	})
	if err != nil {
		return out, err
	}
	_, err = s.gcLocked()
	return out, err
}

// Prune deletes images no container uses: untagged ones, or with all every
// one. Then it deletes layers and blobs no image needs. It returns what was
// removed and the bytes reclaimed.
func (s *Store) Prune(all bool) ([]Removal, int64, error) {
	unlockGC, err := s.lock("gc", true)
	if err != nil {
		return nil, 0, err
	}
	defer unlockGC()
	if all {
		// -a frees the build cache too, as docker's does.
		if err := os.RemoveAll(s.path("pins")); err != nil {
			return nil, 0, err
		}
	}
	ids, err := s.listIDs()
	if err != nil {
		return nil, 0, err
	}
	var out []Removal
	err = s.updateRefs(func(refs map[string]string) error {
		for _, id := range ids {
			users, err := s.Users(id)
			if err != nil {
				return err
			}
			tags := tagsOf(refs, id)
			if len(users) > 0 || (len(tags) > 0 && !all) {
				continue
			}
			for _, t := range tags {
				delete(refs, t)
				out = append(out, Removal{Untagged: t})
			}
			if err := os.Remove(s.path("images", hexOf(id)+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			out = append(out, Removal{Deleted: id})
		}
		return nil
	})
	if err != nil {
		return out, 0, err
	}
	n, err := s.gcLocked()
	return out, n, err
}

// gcLocked deletes layers, blobs and short links no image record or pin needs. The
// caller holds the gc lock exclusively, so no pull or mount is under way.
func (s *Store) gcLocked() (int64, error) {
	ids, err := s.listIDs()
	if err != nil {
		return 0, err
	}
	layers := map[string]bool{}
	blobs := map[string]bool{}
	for _, id := range ids {
		img, err := s.readRecord(id)
		if err != nil {
			return 0, err // never collect on a partial view
		}
		blobs[hexOf(img.ID)] = true
		blobs[hexOf(img.ManifestDigest)] = true
		for _, l := range img.Layers {
			layers[hexOf(l.DiffID)] = true
			blobs[hexOf(l.Digest)] = true
		}
	}
	if err := s.pinned(layers, blobs); err != nil {
		return 0, err
	}
	var reclaimed int64
	ents, err := os.ReadDir(s.path("layers"))
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if layers[e.Name()] {
			continue
		}
		if li, err := s.readLayerInfo(e.Name()); err == nil {
			reclaimed += li.Unpacked
		}
		if err := s.removeThroughTmp(s.path("layers", e.Name()), "gc-"+e.Name()); err != nil {
			return reclaimed, err
		}
		os.Remove(s.path("locks", "layer-"+e.Name()))
	}
	ents, err = os.ReadDir(s.path("blobs", "sha256"))
	if err != nil {
		return reclaimed, err
	}
	for _, e := range ents {
		if blobs[e.Name()] {
			continue
		}
		if fi, err := e.Info(); err == nil {
			reclaimed += fi.Size()
		}
		if err := os.Remove(s.path("blobs", "sha256", e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return reclaimed, err
		}
	}
	// Init layers of images that are gone (initDirName starts with the
	// image's hex ID). A mounted container's image is never gone: it is
	// recorded as a user of it.
	inits, _ := os.ReadDir(s.path("init"))
	for _, e := range inits {
		id, _, _ := strings.Cut(e.Name(), "-")
		if blobs[id] {
			continue
		}
		if err := s.removeThroughTmp(s.path("init", e.Name()), "gc-init-"+e.Name()); err != nil {
			return reclaimed, err
		}
	}
	// Short names for long overlay mounts whose layer is gone.
	links, _ := filepath.Glob(s.path("l", "*"))
	for _, l := range links {
		if _, err := os.Stat(l); errors.Is(err, os.ErrNotExist) {
			os.Remove(l)
		}
	}
	// Leftovers of interrupted pulls, imports, loads, pushes and
	// removals. A load reads its gunzipped archive through a descriptor
	// it holds, and a push holds the gc lock, so neither loses a file it
	// still uses.
	tmps, _ := os.ReadDir(s.path("tmp"))
	for _, t := range tmps {
		for _, prefix := range []string{"layer-", "gc-", "init-", "archive-", "push-"} {
			if strings.HasPrefix(t.Name(), prefix) {
				os.RemoveAll(s.path("tmp", t.Name()))
			}
		}
	}
	return reclaimed, nil
}

// removeThroughTmp removes the directory p by renaming it to tmp/name
// first, so that a removal cut short leaves nothing half-gone in place
// (and a leftover of an earlier one under that name is removed first).
func (s *Store) removeThroughTmp(p, name string) error {
	gone := s.path("tmp", name)
	if err := os.RemoveAll(gone); err != nil {
		return err
	}
	if err := os.Rename(p, gone); err != nil {
		return err
	}
	return os.RemoveAll(gone)
}
