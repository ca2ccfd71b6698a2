package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"

	"github.com/berthrun/berth/engine/image/dockerconfig"
)

// PushOptions tune Push.
type PushOptions struct {
	// InsecureRegistries are host[:port] names reached over plain HTTP.
	// localhost and 127.0.0.1 always are.
	InsecureRegistries []string
	// Keychain finds credentials; nil reads the docker config.
	Keychain  authn.Keychain
	Transport http.RoundTripper
}

// Push sends the stored image ref to its registry, its layers as they
// are stored but for those kept as their directory alone (a build's),
// which go gzipped as docker pushes them; the registry's manifest digest
// is the store's when there are none. It returns that digest.
func (s *Store) Push(ctx context.Context, ref string, o PushOptions) (string, error) {
	r, err := ParseReference(ref, false)
	if err != nil {
		return "", err
	}
	if isInsecure(r.Context().RegistryStr(), o.InsecureRegistries) {
		if r, err = ParseReference(ref, true); err != nil {
			return "", err
		}
	}
	unlockGC, err := s.lock("gc", false)
	if err != nil {
		return "", err
	}
	defer unlockGC()
	rec, err := s.Image(ref)
	if err != nil {
		return "", err
	}
	img, cleanup, err := s.compressedImage(ctx, rec)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	defer cleanup()
	keychain := o.Keychain
	if keychain == nil {
		keychain = dockerconfig.Keychain()
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(keychain),
		remote.WithUserAgent("berth"),
	}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	if err := remote.Write(r, img, opts...); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// compressedImage is the stored image rec with each layer whose blob is
// its directory's tar (see WriteLayerTar) gzipped into a file of the
// store's tmp directory, and a manifest that names those blobs; cleanup
// removes the files. An image without such layers is served as stored.
func (s *Store) compressedImage(ctx context.Context, rec *Image) (v1.Image, func(), error) {
	nop := func() {}
	raw, err := s.readBlob(rec.ManifestDigest)
	if err != nil {
		return nil, nop, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nop, err
	}
	ci := &compressedImage{storedImage: storedImage{s: s, rec: rec}, files: map[string]*gzipFileLayer{}}
	cleanup := func() {
		for _, f := range ci.files {
			os.Remove(f.path)
		}
	}
	changed := false
	for i, l := range rec.Layers {
		if !dirBlob(l) || s.hasBlob(l.Digest) || i >= len(m.Layers) || m.Layers[i].Digest.String() != l.Digest {
			continue
		}
		if err := ctx.Err(); err != nil {
			cleanup()
			return nil, nop, err
		}
		f, desc, err := s.gzipDirBlob(l)
		if err != nil {
			cleanup()
			return nil, nop, fmt.Errorf("layer %s: %w", short(l.DiffID), err)
		}
		diffID, err := v1.NewHash(l.DiffID)
		if err != nil {
			os.Remove(f)
			cleanup()
			return nil, nop, err
		}
		ci.files[desc.Digest.String()] = &gzipFileLayer{path: f, digest: desc.Digest, diffID: diffID, size: desc.Size}
		m.Layers[i] = desc
		changed = true
	}
	if !changed {
		img, err := partial.CompressedToImage(&ci.storedImage)
		return img, nop, err
	}
	if ci.manifest, err = json.Marshal(m); err != nil {
		cleanup()
		return nil, nop, err
	}
	img, err := partial.CompressedToImage(ci)
	if err != nil {
		cleanup()
		return nil, nop, err
	}
	return img, cleanup, nil
}

// gzipDirBlob compresses the tar of the stored layer l's directory into a
// file of the store's tmp directory (not "layer-": gc clears those) and
// returns the file and its descriptor.
func (s *Store) gzipDirBlob(l Layer) (string, v1.Descriptor, error) {
	f, err := os.CreateTemp(s.path("tmp"), "push-")
	if err != nil {
		return "", v1.Descriptor{}, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = func() error {
		zw, err := pgzip.NewWriterLevel(cw, pgzip.BestSpeed)
		if err != nil {
			return err
		}
		rc := s.openDirBlob(l)
		defer rc.Close()
		if _, err := io.Copy(zw, rc); err != nil {
			return err
		}
		return zw.Close()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", v1.Descriptor{}, err
	}
	d, err := v1.NewHash(sumOf(h))
	if err != nil {
		os.Remove(f.Name())
		return "", v1.Descriptor{}, err
	}
	return f.Name(), v1.Descriptor{MediaType: types.DockerLayer, Size: cw.n, Digest: d}, nil
}

// compressedImage serves a stored image whose directory-blob layers were
// gzipped for a push.
type compressedImage struct {
	storedImage
	manifest []byte
	files    map[string]*gzipFileLayer // by gzip digest
}

func (ci *compressedImage) RawManifest() ([]byte, error) { return ci.manifest, nil }

func (ci *compressedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if f, ok := ci.files[h.String()]; ok {
		return f, nil
	}
	return ci.storedImage.LayerByDigest(h)
}

// gzipFileLayer is a layer gzipped into a file for a push.
type gzipFileLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
}

func (g *gzipFileLayer) Digest() (v1.Hash, error)            { return g.digest, nil }
func (g *gzipFileLayer) DiffID() (v1.Hash, error)            { return g.diffID, nil }
func (g *gzipFileLayer) Size() (int64, error)                { return g.size, nil }
func (g *gzipFileLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }
func (g *gzipFileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(g.path) }
