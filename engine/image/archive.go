package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"
)

// tarIndex gives random access to the regular files of an uncompressed tar.
type tarIndex struct {
	f     *os.File
	files map[string]tarFile
}

type tarFile struct{ off, size int64 }

// offsetReader tracks how far tar.Reader has read, so each file's data offset
// is known.
type offsetReader struct {
	r   io.Reader
	off int64
}

func (o *offsetReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	o.off += int64(n)
	return n, err
}

func indexTar(f *os.File) (*tarIndex, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	or := &offsetReader{r: f}
	tr := tar.NewReader(or)
	idx := &tarIndex{f: f, files: map[string]tarFile{}}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, invalidf("read archive: %v", err)
		}
		name := path.Clean(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg: // tar.Reader turns the old TypeRegA into TypeReg or TypeDir
			// tar.Reader has consumed exactly the header blocks here: it
			// reads file data lazily, so or.off is where the data starts.
			idx.files[name] = tarFile{off: or.off, size: hdr.Size}
		case tar.TypeSymlink, tar.TypeLink:
			// docker save links duplicate layers; resolve once all are known.
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink {
				target = path.Join(path.Dir(name), target)
			}
			defer func(n, t string) {
				if tf, ok := idx.files[path.Clean(t)]; ok {
					idx.files[n] = tf
				}
			}(name, target)
		}
	}
	return idx, nil
}

func (t *tarIndex) open(name string) (io.ReadCloser, error) {
	tf, ok := t.files[path.Clean(name)]
	if !ok {
		return nil, invalidf("archive has no file %q", name)
	}
	return io.NopCloser(io.NewSectionReader(t.f, tf.off, tf.size)), nil
}

func (t *tarIndex) read(name string) ([]byte, error) {
	rc, err := t.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (t *tarIndex) has(name string) bool {
	_, ok := t.files[path.Clean(name)]
	return ok
}

// hashFile returns the digest and size of an archive member.
func (t *tarIndex) hashFile(name string) (string, int64, error) {
	rc, err := t.open(name)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

// archiveImage is an image read from an archive, as go-containerregistry's
// partial.CompressedImageCore.
type archiveImage struct {
	idx       *tarIndex
	manifest  []byte
	mediaType types.MediaType
	config    []byte
	layers    map[string]string // blob digest -> member name
	sizes     map[string]int64
	tags      []string
}

func (a *archiveImage) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *archiveImage) MediaType() (types.MediaType, error) { return a.mediaType, nil }
func (a *archiveImage) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *archiveImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	member, ok := a.layers[h.String()]
	if !ok {
		return nil, invalidf("archive has no layer %s", h)
	}
	return &archiveLayer{a: a, digest: h, member: member}, nil
}

type archiveLayer struct {
	a      *archiveImage
	digest v1.Hash
	member string
}

func (l *archiveLayer) Digest() (v1.Hash, error)           { return l.digest, nil }
func (l *archiveLayer) Compressed() (io.ReadCloser, error) { return l.a.idx.open(l.member) }
func (l *archiveLayer) Size() (int64, error)               { return l.a.sizes[l.digest.String()], nil }
func (l *archiveLayer) MediaType() (types.MediaType, error) {
	return types.DockerLayer, nil
}

// Load stores every image of a `docker save` or OCI image-layout archive
// (optionally gzip-compressed) and returns them; their RepoTags are the tags
// the archive gave them.
func (s *Store) Load(ctx context.Context, archivePath string, progress ProgressFunc) ([]*Image, error) {
	f, cleanup, err := openArchive(archivePath, s.path("tmp"))
	if err != nil {
		return nil, err
	}
	defer cleanup()
	idx, err := indexTar(f)
	if err != nil {
		return nil, err
	}
	var imgs []*archiveImage
	switch {
	case idx.has("manifest.json"):
		imgs, err = dockerArchiveImages(idx)
	case idx.has("index.json"):
		imgs, err = ociArchiveImages(idx)
	default:
		err = invalidf("%s is neither a docker save nor an OCI image-layout archive (no manifest.json or index.json)", archivePath)
	}
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, ai := range imgs {
		img, err := partial.CompressedToImage(ai)
		if err != nil {
			return nil, err
		}
		rec, err := s.commit(ctx, img, commitOptions{
			tags: ai.tags, progress: progress, busy: StatusLoadingLayer, done: StatusLayerComplete,
		})
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", archivePath, err)
		}
		rec.RepoTags = append([]string(nil), ai.tags...)
		out = append(out, rec)
	}
	return out, nil
}

// openArchive opens an archive, decompressing a gzip one to a temp file.
func openArchive(p, tmpDir string) (*os.File, func(), error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(f)
	magic, _ := br.Peek(2)
	if !bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return f, func() { f.Close() }, nil
	}
	defer f.Close()
	zr, err := pgzip.NewReader(br) // as layers are read: less CPU than compress/gzip
	if err != nil {
		return nil, nil, err
	}
	defer zr.Close()
	tmp, err := os.CreateTemp(tmpDir, "archive-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, zr); err != nil {
		cleanup()
		return nil, nil, err
	}
	return tmp, cleanup, nil
}

// dockerArchiveImages reads manifest.json of a `docker save` archive. Layers
// there are usually uncompressed tars; a manifest is synthesised around them
// from what is actually in the archive.
func dockerArchiveImages(idx *tarIndex) ([]*archiveImage, error) {
	data, err := idx.read("manifest.json")
	if err != nil {
		return nil, err
	}
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, invalidf("manifest.json: %v", err)
	}
	var out []*archiveImage
	for _, e := range entries {
		cfg, err := idx.read(e.Config)
		if err != nil {
			return nil, err
		}
		ai := &archiveImage{idx: idx, config: cfg, layers: map[string]string{}, sizes: map[string]int64{}}
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.DockerManifestSchema2}
		sum := sha256.Sum256(cfg)
		m.Config = v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(cfg)), Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}
		for _, l := range e.Layers {
			d, size, err := idx.hashFile(l)
			if err != nil {
				return nil, err
			}
			mt, err := sniffLayer(idx, l)
			if err != nil {
				return nil, err
			}
			h, _ := v1.NewHash(d)
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: mt, Size: size, Digest: h})
			ai.layers[d] = l
			ai.sizes[d] = size
		}
		if ai.manifest, err = json.Marshal(m); err != nil {
			return nil, err
		}
		ai.mediaType = types.DockerManifestSchema2
		for _, t := range e.RepoTags {
			r, err := name.NewTag(t)
			if err != nil {
				return nil, invalidf("manifest.json: bad tag %q: %v", t, err)
			}
			ai.tags = append(ai.tags, canonical(r))
		}
		out = append(out, ai)
	}
	return out, nil
}

func sniffLayer(idx *tarIndex, member string) (types.MediaType, error) {
	rc, err := idx.open(member)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var magic [4]byte
	n, _ := io.ReadFull(rc, magic[:])
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return types.DockerLayer, nil
	case n == 4 && bytes.Equal(magic[:], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return types.OCILayerZStd, nil
	}
	return types.DockerUncompressedLayer, nil
}

// ociArchiveImages walks index.json of an OCI image layout (nested indexes
// included) to its linux/amd64 or only image manifests.
func ociArchiveImages(idx *tarIndex) ([]*archiveImage, error) {
	data, err := idx.read("index.json")
	if err != nil {
		return nil, err
	}
	var out []*archiveImage
	var walk func(index []byte, refName string, depth int) error
	walk = func(index []byte, refName string, depth int) error {
		if depth > 4 {
			return invalidf("index.json: indexes nested too deep")
		}
		im, err := v1.ParseIndexManifest(bytes.NewReader(index))
		if err != nil {
			return invalidf("index: %v", err)
		}
		var images []v1.Descriptor
		for _, d := range im.Manifests {
			rn := refName
			if v, ok := d.Annotations["io.containerd.image.name"]; ok {
				rn = v
			} else if v, ok := d.Annotations["org.opencontainers.image.ref.name"]; ok && rn == "" {
				rn = v
			}
			switch d.MediaType {
			case types.OCIImageIndex, types.DockerManifestList:
				child, err := idx.read(blobMember(d.Digest))
				if err != nil {
					return err
				}
				if err := walk(child, rn, depth+1); err != nil {
					return err
				}
			case types.OCIManifestSchema1, types.DockerManifestSchema2:
				d.Annotations = map[string]string{"berth.ref": rn}
				images = append(images, d)
			}
		}
		// From a multi-platform index keep only the platform berth runs.
		if len(images) > 1 {
			var keep []v1.Descriptor
			for _, d := range images {
				if d.Platform == nil || d.Platform.Satisfies(DefaultPlatform) {
					keep = append(keep, d)
				}
			}
			images = keep
		}
		for _, d := range images {
			ai, err := ociImage(idx, d)
			if err != nil {
				return err
			}
			out = append(out, ai)
		}
		return nil
	}
	if err := walk(data, "", 0); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, invalidf("index.json lists no image for %s/%s", DefaultPlatform.OS, DefaultPlatform.Architecture)
	}
	return out, nil
}

func blobMember(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

func ociImage(idx *tarIndex, d v1.Descriptor) (*archiveImage, error) {
	raw, err := idx.read(blobMember(d.Digest))
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, invalidf("manifest %s: %v", d.Digest, err)
	}
	cfg, err := idx.read(blobMember(m.Config.Digest))
	if err != nil {
		return nil, err
	}
	ai := &archiveImage{idx: idx, manifest: raw, mediaType: d.MediaType, config: cfg, layers: map[string]string{}, sizes: map[string]int64{}}
	for _, l := range m.Layers {
		ai.layers[l.Digest.String()] = blobMember(l.Digest)
		ai.sizes[l.Digest.String()] = l.Size
	}
	if rn := d.Annotations["berth.ref"]; rn != "" {
		// A bare "org.opencontainers.image.ref.name" may be just a tag.
		if r, err := ParseReference(rn, false); err == nil {
			if _, ok := r.(name.Tag); ok {
				ai.tags = append(ai.tags, canonical(r))
			}
		}
	}
	return ai, nil
}
