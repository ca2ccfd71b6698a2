package image

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berthrun/berth/internal/atomicfile"
)

// storedImage serves a stored image's blobs to go-containerregistry.
type storedImage struct {
	s   *Store
	rec *Image
}

func (si *storedImage) RawConfigFile() ([]byte, error) { return si.s.readBlob(si.rec.ID) }
func (si *storedImage) RawManifest() ([]byte, error)   { return si.s.readBlob(si.rec.ManifestDigest) }
func (si *storedImage) MediaType() (types.MediaType, error) {
	return types.MediaType(si.rec.MediaType), nil
}

func (si *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range si.rec.Layers {
		if l.Digest == h.String() {
			return &storedLayer{s: si.s, l: l}, nil
		}
	}
	return nil, fmt.Errorf("image %s has no layer %s: %w", short(si.rec.ID), h, ErrNotFound)
}

type storedLayer struct {
	s *Store
	l Layer
}

func (sl *storedLayer) Digest() (v1.Hash, error) { return v1.NewHash(sl.l.Digest) }
func (sl *storedLayer) DiffID() (v1.Hash, error) { return v1.NewHash(sl.l.DiffID) }
func (sl *storedLayer) Size() (int64, error)     { return sl.l.Size, nil }
func (sl *storedLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(sl.l.MediaType), nil
}
func (sl *storedLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(sl.s.blobPath(sl.l.Digest))
	if os.IsNotExist(err) && dirBlob(sl.l) && sl.s.hasLayer(sl.l.DiffID) {
		return sl.s.openDirBlob(sl.l), nil
	}
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("layer blob %s: %w", short(sl.l.Digest), ErrNotFound)
	}
	return f, err
}

// V1Image returns a stored image as a go-containerregistry image (for save,
// push, or tests).
func (s *Store) V1Image(ref string) (v1.Image, error) {
	rec, err := s.Image(ref)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&storedImage{s: s, rec: rec})
}

// Save writes the images refs name as a `docker save` archive to w. A ref that
// names a tag is saved with that tag; an ID saves the image untagged.
func (s *Store) Save(ctx context.Context, w io.Writer, refs ...string) error {
	unlockGC, err := s.lock("gc", false)
	if err != nil {
		return err
	}
	defer unlockGC()
	m := map[name.Reference]v1.Image{}
	byID := map[string]v1.Image{} // one v1.Image per ID so layers are written once
	for _, ref := range refs {
		id, tagKey, err := s.resolve(ref)
		if err != nil {
			return err
		}
		img, ok := byID[id]
		if !ok {
			if img, err = s.V1Image(id); err != nil {
				return err
			}
			byID[id] = img
		}
		if tagKey != "" {
			t, err := name.NewTag(FamiliarName(tagKey))
			if err != nil {
				return err
			}
			m[t] = img
			continue
		}
		md, err := img.Digest()
		if err != nil {
			return err
		}
		d, err := name.NewDigest("untagged@" + md.String())
		if err != nil {
			return err
		}
		m[d] = img
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return tarball.MultiRefWrite(m, w)
}

// SaveFile writes the archive to path atomically.
func (s *Store) SaveFile(ctx context.Context, path string, refs ...string) error {
	return atomicfile.WriteFunc(path, 0o644, func(w io.Writer) error {
		return s.Save(ctx, w, refs...)
	})
}
