// Package image is berth's image store: content-addressed blobs, layers
// unpacked once and shared through overlayfs, image records by reference,
// and the sources that fill it (registry pull, docker/OCI archive load,
// rootfs import).
//
// Layout under the root:
//
//	blobs/sha256/HEX          manifests, configs and layer blobs as received
//	layers/HEX/diff           a layer unpacked, keyed by its diff ID (overlay lowerdir)
//	layers/HEX/layer.json     its size and blob digest
//	images/HEX.json           an image record, keyed by its ID (config digest)
//	refs.json                 repository:tag -> image ID
//	containers/ID/            a container's upper, work and merged dirs, and image.json
//	locks/                    flock files (gc, meta, one per layer being unpacked)
//
// Writes are temp-file-and-rename. Two processes may use one store: pulls and
// mounts hold the gc lock shared, removal and prune hold it exclusively, and
// each layer is unpacked under its own lock so concurrent pulls unpack it once.
package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berthrun/berth/internal/atomicfile"
	"github.com/berthrun/berth/internal/flock"
)

// Store is an image store rooted at a directory.
type Store struct {
	root string
}

// Image is a stored image: identity, layers and runtime configuration.
type Image struct {
	ID             string    `json:"id"`              // sha256:... of the config
	ManifestDigest string    `json:"manifest_digest"` // sha256:... of the (platform) manifest
	MediaType      string    `json:"media_type"`      // of the manifest
	RepoTags       []string  `json:"-"`               // canonical repo:tag names, from refs.json
	RepoDigests    []string  `json:"repo_digests"`    // canonical repo@digest names
	Created        time.Time `json:"created"`
	Stored         time.Time `json:"stored"`
	Pulled         time.Time `json:"pulled,omitempty"` // the last pull that named it, up to date or not
	Architecture   string    `json:"architecture"`
	OS             string    `json:"os"`
	Layers         []Layer   `json:"layers"` // bottom first
	Size           int64     `json:"size"`   // unpacked bytes of all layers
	Config         Config    `json:"config"`
}

// Layer is one layer of an image.
type Layer struct {
	DiffID    string `json:"diff_id"` // sha256 of the uncompressed tar
	Digest    string `json:"digest"`  // sha256 of the blob as received
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"` // blob size
}

// Config is the part of an image's configuration a container needs.
type Config struct {
	User         string            `json:"user,omitempty"`
	Env          []string          `json:"env,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	WorkingDir   string            `json:"working_dir,omitempty"`
	ExposedPorts []string          `json:"exposed_ports,omitempty"` // "80/tcp", sorted
	Volumes      []string          `json:"volumes,omitempty"`       // sorted
	Labels       map[string]string `json:"labels,omitempty"`
	StopSignal   string            `json:"stop_signal,omitempty"`
	Healthcheck  *Healthcheck      `json:"healthcheck,omitempty"`
	Shell        []string          `json:"shell,omitempty"`
}

// Healthcheck is an image's HEALTHCHECK. Test is as docker stores it:
// ["NONE"], ["CMD", args...] or ["CMD-SHELL", command].
type Healthcheck struct {
	Test        []string      `json:"test,omitempty"`
	Interval    time.Duration `json:"interval,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"`
	StartPeriod time.Duration `json:"start_period,omitempty"`
	Retries     int           `json:"retries,omitempty"`
}

// Open opens (creating if needed) the store at root.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"blobs/sha256", "layers", "images", "containers", "locks", "tmp", "l"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	return &Store{root: abs}, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

// lock takes a flock on locks/name. flock is per open file, so it excludes
// goroutines of this process as well as other processes.
func (s *Store) lock(name string, exclusive bool) (unlock func(), err error) {
	take := flock.Shared
	if exclusive {
		take = flock.Exclusive
	}
	l, err := take(context.Background(), s.path("locks", name))
	if err != nil {
		return nil, err
	}
	return func() { l.Unlock() }, nil
}

func writeJSONAtomic(path string, v any) error {
	return writeJSON(path, v, atomicfile.WriteFileSync)
}

// writeJSONUnsynced replaces path with v by rename, without fsync: for a
// record whose loss costs only work done again.
func writeJSONUnsynced(path string, v any) error {
	return writeJSON(path, v, atomicfile.WriteFile)
}

func writeJSON(path string, v any, write func(string, []byte, os.FileMode) error) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return write(path, append(data, '\n'), 0o600)
}

// refs.json ----------------------------------------------------------------

func (s *Store) readRefs() (map[string]string, error) {
	data, err := os.ReadFile(s.path("refs.json"))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	if err := json.Unmarshal(data, &refs); err != nil {
		return nil, fmt.Errorf("image store refs.json: %w", err)
	}
	return refs, nil
}

// updateRefs applies fn to refs.json under the meta lock.
func (s *Store) updateRefs(fn func(refs map[string]string) error) error {
	unlock, err := s.lock("meta", true)
	if err != nil {
		return err
	}
	defer unlock()
	refs, err := s.readRefs()
	if err != nil {
		return err
	}
	before := maps.Clone(refs)
	if err := fn(refs); err != nil {
		return err
	}
	if maps.Equal(before, refs) {
		return nil // nothing to write (and to fsync): a rebuild that changed nothing
	}
	return writeJSONAtomic(s.path("refs.json"), refs)
}

// image records --------------------------------------------------------------

func (s *Store) readRecord(id string) (*Image, error) {
	data, err := os.ReadFile(s.path("images", hexOf(id)+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, &NotFoundError{Ref: id}
	}
	if err != nil {
		return nil, err
	}
	var img Image
	if err := json.Unmarshal(data, &img); err != nil {
		return nil, fmt.Errorf("image record %s: %w", short(id), err)
	}
	return &img, nil
}

func (s *Store) writeRecord(img *Image) error {
	return writeJSONAtomic(s.path("images", hexOf(img.ID)+".json"), img)
}

func (s *Store) listIDs() ([]string, error) {
	ents, err := os.ReadDir(s.path("images"))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		n := e.Name()
		if hex, ok := strings.CutSuffix(n, ".json"); ok && !strings.HasPrefix(n, ".") {
			ids = append(ids, "sha256:"+hex)
		}
	}
	return ids, nil
}

func tagsOf(refs map[string]string, id string) []string {
	var tags []string
	for r, v := range refs {
		if v == id {
			tags = append(tags, r)
		}
	}
	sort.Strings(tags)
	return tags
}

// List returns every image in the store, newest first.
func (s *Store) List() ([]*Image, error) {
	refs, err := s.readRefs()
	if err != nil {
		return nil, err
	}
	ids, err := s.listIDs()
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, id := range ids {
		img, err := s.readRecord(id)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		img.RepoTags = tagsOf(refs, id)
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Image resolves ref (a name, name:tag, name@digest, a full image ID or a
// unique ID prefix) to a stored image.
func (s *Store) Image(ref string) (*Image, error) {
	id, _, err := s.resolve(ref)
	if err != nil {
		return nil, err
	}
	refs, err := s.readRefs()
	if err != nil {
		return nil, err
	}
	img, err := s.readRecord(id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, &NotFoundError{Ref: ref}
		}
		return nil, err
	}
	img.RepoTags = tagsOf(refs, id)
	return img, nil
}

// resolve returns the image ID for ref and, when ref is a tag, its canonical
// name (the key in refs.json).
func (s *Store) resolve(ref string) (id, tagKey string, err error) {
	if ref == "" {
		return "", "", invalidf("empty image reference")
	}
	if isFullID(ref) {
		id := "sha256:" + hexOf(ref)
		if _, err := os.Stat(s.path("images", hexOf(id)+".json")); err == nil {
			return id, "", nil
		}
		return "", "", &NotFoundError{Ref: ref}
	}
	refs, err := s.readRefs()
	if err != nil {
		return "", "", err
	}
	if r, perr := ParseReference(ref, false); perr == nil {
		key := canonical(r)
		if id, ok := refs[key]; ok {
			return id, key, nil
		}
		if strings.Contains(key, "@") {
			ids, err := s.listIDs()
			if err != nil {
				return "", "", err
			}
			for _, id := range ids {
				img, err := s.readRecord(id)
				if err != nil {
					continue
				}
				for _, d := range img.RepoDigests {
					if d == key {
						return id, "", nil
					}
				}
			}
		}
	}
	if isIDPrefix(ref) {
		p := hexOf(ref)
		ids, err := s.listIDs()
		if err != nil {
			return "", "", err
		}
		var match []string
		for _, id := range ids {
			if strings.HasPrefix(hexOf(id), p) {
				match = append(match, id)
			}
		}
		if len(match) == 1 {
			return match[0], "", nil
		}
		if len(match) > 1 {
			return "", "", conflictf("image ID prefix %q is ambiguous", ref)
		}
	}
	return "", "", &NotFoundError{Ref: ref}
}

// Tag points target (a name in canonical or familiar form) at the image ref
// resolves to.
func (s *Store) Tag(ref, target string) error {
	id, _, err := s.resolve(ref)
	if err != nil {
		return err
	}
	r, err := ParseReference(target, false)
	if err != nil {
		return err
	}
	if _, ok := r.(interface{ TagStr() string }); !ok {
		return invalidf("cannot tag with a digest reference %q", target)
	}
	return s.updateRefs(func(refs map[string]string) error {
		refs[canonical(r)] = id
		return nil
	})
}
