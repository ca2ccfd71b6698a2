package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// The builder (package build) makes layers and images from its own steps:
// these are the store operations it needs beyond pull, load and import.

// HasLayer reports whether the layer with diffID is unpacked in the store.
// Layers no image record names are collected by prune, so a builder checks
// its cached layers before it reuses them.
func (s *Store) HasLayer(diffID string) bool { return s.hasLayer(diffID) }

// MountLayers is Mount for a builder's step: an overlay of layers (bottom
// first) under a fresh upper directory, with no image record behind it,
// mounted volatile (see mountLocked). Undo it with RemoveRootfs.
func (s *Store) MountLayers(ctx context.Context, id string, diffIDs []string) (string, error) {
	if err := checkContainerID(id); err != nil {
		return "", err
	}
	unlockGC, err := s.lock("gc", false)
	if err != nil {
		return "", err
	}
	defer unlockGC()
	unlockCtr, err := s.lock(ctrLock(id), true)
	if err != nil {
		return "", err
	}
	defer unlockCtr()
	img := &Image{ID: "sha256:build-" + id}
	for _, d := range diffIDs {
		img.Layers = append(img.Layers, Layer{DiffID: d})
	}
	return s.mountLocked(ctx, id, img, true, nil)
}

// UpperDir is where the writes to a mounted rootfs land: a step's diff.
func (s *Store) UpperDir(id string) string { return s.containerDir(id, "upper") }

// Commit stores an image made of a config and layers the store already has,
// and points tags (familiar or canonical references) at it.
func (s *Store) Commit(ctx context.Context, cfg *v1.ConfigFile, layers []Layer, tags []string) (*Image, error) {
	var keys []string
	for _, t := range tags {
		r, err := ParseReference(t, false)
		if err != nil {
			return nil, err
		}
		keys = append(keys, canonical(r))
	}
	rawConfig, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgHash, cfgSize, err := v1.SHA256(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: cfgSize, Digest: cfgHash},
	}
	for _, l := range layers {
		h, err := v1.NewHash(l.Digest)
		if err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.MediaType(l.MediaType), Size: l.Size, Digest: h})
	}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	img, err := partial.CompressedToImage(&builtImage{s: s, config: rawConfig, manifest: rawManifest, layers: layers})
	if err != nil {
		return nil, err
	}
	return s.commit(ctx, img, commitOptions{tags: keys, busy: StatusLoadingLayer, done: StatusLayerComplete})
}

// builtImage serves a builder's result to commit: its layers are already
// in the store, so only the config and manifest are new.
type builtImage struct {
	s                *Store
	config, manifest []byte
	layers           []Layer
}

func (b *builtImage) RawConfigFile() ([]byte, error) { return b.config, nil }
func (b *builtImage) RawManifest() ([]byte, error)   { return b.manifest, nil }
func (b *builtImage) MediaType() (types.MediaType, error) {
	return types.DockerManifestSchema2, nil
}
func (b *builtImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range b.layers {
		if l.Digest == h.String() {
			return &storedLayer{s: b.s, l: l}, nil
		}
	}
	return nil, fmt.Errorf("built image has no layer %s: %w", h, ErrNotFound)
}

// Pin keeps layers that no image names (a builder's cached steps) from
// being collected: gc keeps every layer and blob a pin lists, until the pin
// goes with Unpin, PruneBuildCache, or `image prune -a`.
func (s *Store) Pin(name string, layers []Layer) error {
	if err := checkContainerID(name); err != nil {
		return err
	}
	if err := os.MkdirAll(s.path("pins"), 0o700); err != nil {
		return err
	}
	// Without fsync: a pin keeps a cached step's layers, whose record
	// (and files, see AddLayerDir) are not synced either; one lost to a
	// power loss costs that step again. Its two fsyncs were 1-8 ms of
	// every step that missed the cache.
	return writeJSONUnsynced(s.path("pins", name+".json"), layers)
}

// Unpin removes pins; a missing one is no error.
func (s *Store) Unpin(names ...string) error {
	for _, n := range names {
		if err := os.Remove(s.path("pins", n+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// pinned adds the layers and blobs of every pin to keep.
func (s *Store) pinned(layers, blobs map[string]bool) error {
	ents, err := os.ReadDir(s.path("pins"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(s.path("pins", e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		var ls []Layer
		if err := json.Unmarshal(data, &ls); err != nil {
			continue // a torn pin keeps nothing
		}
		for _, l := range ls {
			layers[hexOf(l.DiffID)] = true
			blobs[hexOf(l.Digest)] = true
		}
	}
	return nil
}

// PruneBuildCache removes every pin and collects what only they kept. It
// returns the bytes reclaimed.
func (s *Store) PruneBuildCache() (int64, error) {
	unlockGC, err := s.lock("gc", true)
	if err != nil {
		return 0, err
	}
	defer unlockGC()
	if err := os.RemoveAll(s.path("pins")); err != nil {
		return 0, err
	}
	return s.gcLocked()
}

// LayerSize is the unpacked size of a stored layer (0 when unknown), as
// `image history` shows it.
func (s *Store) LayerSize(diffID string) int64 {
	li, err := s.readLayerInfo(diffID)
	if err != nil {
		return 0
	}
	return li.Unpacked
}

// AddLayerDir stores a layer the builder made: its content as a directory
// already (an overlay upper directory, in the unpacked layers' own format:
// whiteouts as 0/0 character devices, opaque directories by xattr), and
// its gzip blob when blobPath is not "". The directory moves into the store
// instead of a blob being unpacked again. dir must be on the store's
// filesystem; overlay's bookkeeping xattrs other than opaque are dropped.
// The blob file moves into the store too (or goes); unpacked is the bytes
// of file content, for sizes. It returns the layer as stored: when the
// store had this diff ID already, its blob (maybe compressed differently)
// is the one kept. A layer whose media type is UncompressedLayer and
// whose digest is its diff ID needs no blob file: WriteLayerTar of its
// directory is its blob (l.Size says that tar's bytes). Any other layer
// stored without a blob (its Digest is "") gets one with AddLayerBlob
// before an image names it.
func (s *Store) AddLayerDir(ctx context.Context, dir, blobPath string, l Layer, unpacked int64) (Layer, error) {
	return s.addLayerDir(ctx, dir, blobPath, l, unpacked, stripOverlayXattrs)
}

// AddBuiltLayer is AddLayerDir for the directory dir that WriteLayerTar
// wrote as t: its tar is its blob, and of overlay's xattrs only those t
// found are removed, without walking the directory again.
func (s *Store) AddBuiltLayer(ctx context.Context, dir string, t LayerTar) (Layer, error) {
	l := Layer{DiffID: t.DiffID, Digest: t.DiffID, MediaType: UncompressedLayer, Size: t.Size}
	return s.addLayerDir(ctx, dir, "", l, t.Content, func(dir string) error {
		for _, rel := range t.Overlay {
			if err := stripXattrs(filepath.Join(dir, rel)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) addLayerDir(ctx context.Context, dir, blobPath string, l Layer, unpacked int64, strip func(dir string) error) (Layer, error) {
	if blobPath != "" {
		defer os.Remove(blobPath)
	}
	unlockGC, err := s.lock("gc", false)
	if err != nil {
		return Layer{}, err
	}
	defer unlockGC()
	if !s.hasLayer(l.DiffID) {
		unlock, err := s.lock("layer-"+hexOf(l.DiffID), true)
		if err != nil {
			return Layer{}, err
		}
		defer unlock()
	}
	if !s.hasLayer(l.DiffID) {
		if err := ctx.Err(); err != nil {
			return Layer{}, err
		}
		if err := strip(dir); err != nil {
			return Layer{}, err
		}
		tmp, err := os.MkdirTemp(s.path("tmp"), "layer-")
		if err != nil {
			return Layer{}, err
		}
		defer os.RemoveAll(tmp)
		if err := os.Rename(dir, filepath.Join(tmp, "diff")); err != nil {
			return Layer{}, err
		}
		if blobPath == "" && !dirBlob(l) {
			l.Digest, l.Size = "", 0
		} else if blobPath != "" && !s.hasBlob(l.Digest) {
			if err := os.Rename(blobPath, s.blobPath(l.Digest)); err != nil {
				return Layer{}, err
			}
		}
		info := layerInfo{DiffID: l.DiffID, Digest: l.Digest, MediaType: l.MediaType, Size: l.Size, Unpacked: unpacked}
		// Not synced: the directory's files came through a volatile
		// overlay and are not either (see MountLayers).
		if err := writeJSONUnsynced(filepath.Join(tmp, "layer.json"), info); err != nil {
			return Layer{}, err
		}
		final := s.path("layers", hexOf(l.DiffID))
		if err := os.RemoveAll(final); err != nil {
			return Layer{}, err
		}
		if err := os.Rename(tmp, final); err != nil {
			return Layer{}, err
		}
	}
	li, err := s.readLayerInfo(l.DiffID)
	if err != nil {
		return Layer{}, err
	}
	return Layer{DiffID: li.DiffID, Digest: li.Digest, MediaType: li.MediaType, Size: li.Size}, nil
}

// stripOverlayXattrs removes the trusted.overlay.* attributes an upper
// directory gathers (origin, impure, ...) except the opaque marker, which
// is part of the layer's content.
func stripOverlayXattrs(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		return stripXattrs(p)
	})
}

// stripXattrs removes from p the overlay xattrs a stored layer drops.
func stripXattrs(p string) error {
	names, err := xattrNames(p, -1)
	if err != nil {
		return nil
	}
	for _, name := range names {
		if strippedXattr(name) {
			if err := unix.Lremovexattr(p, name); err != nil && !errors.Is(err, unix.ENODATA) {
				return fmt.Errorf("%s: remove %s: %w", p, name, err)
			}
		}
	}
	return nil
}

// LayerBlob returns the stored layer with diffID as an image names it,
// with its blob; ok is false when the store has the layer without a blob
// (a builder's intermediate layer, or one whose blob was collected).
func (s *Store) LayerBlob(diffID string) (l Layer, ok bool, err error) {
	li, err := s.readLayerInfo(diffID)
	if err != nil {
		return Layer{}, false, err
	}
	l = Layer{DiffID: li.DiffID, Digest: li.Digest, MediaType: li.MediaType, Size: li.Size}
	return l, li.Digest != "" && (dirBlob(l) || s.hasBlob(li.Digest)), nil
}

// AddLayerBlob gives a stored layer the gzip blob at blobPath (l says its
// digest, media type and size), made from the layer's directory; the file
// moves into the store (or goes). With blobPath "", l must name the tar of
// the directory (see AddLayerDir), which then serves as the blob. It
// returns the layer as stored.
func (s *Store) AddLayerBlob(ctx context.Context, blobPath string, l Layer) (Layer, error) {
	if blobPath != "" {
		defer os.Remove(blobPath)
	} else if !dirBlob(l) {
		return Layer{}, fmt.Errorf("layer %s: no blob", short(l.DiffID))
	}
	if l.Digest == "" {
		return Layer{}, fmt.Errorf("layer %s: a blob needs its digest", short(l.DiffID))
	}
	unlockGC, err := s.lock("gc", false)
	if err != nil {
		return Layer{}, err
	}
	defer unlockGC()
	unlock, err := s.lock("layer-"+hexOf(l.DiffID), true)
	if err != nil {
		return Layer{}, err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return Layer{}, err
	}
	li, err := s.readLayerInfo(l.DiffID)
	if err != nil {
		return Layer{}, err
	}
	if stored := (Layer{DiffID: li.DiffID, Digest: li.Digest, MediaType: li.MediaType, Size: li.Size}); li.Digest != "" && (dirBlob(stored) || s.hasBlob(li.Digest)) {
		return stored, nil
	}
	if blobPath != "" && !s.hasBlob(l.Digest) {
		if err := os.Rename(blobPath, s.blobPath(l.Digest)); err != nil {
			return Layer{}, err
		}
	}
	li.Digest, li.MediaType, li.Size = l.Digest, l.MediaType, l.Size
	if err := writeJSONAtomic(s.path("layers", hexOf(l.DiffID), "layer.json"), li); err != nil {
		return Layer{}, err
	}
	return Layer{DiffID: li.DiffID, Digest: li.Digest, MediaType: li.MediaType, Size: li.Size}, nil
}
