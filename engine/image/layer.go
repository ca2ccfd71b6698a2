package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"

	"github.com/berthrun/berth/engine/image/unpack"
	"github.com/berthrun/berth/internal/atomicfile"
)

// layerInfo is layers/HEX/layer.json.
type layerInfo struct {
	DiffID    string `json:"diff_id"`
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`          // blob bytes
	Unpacked  int64  `json:"unpacked_size"` // file content bytes
}

// LayerDir returns the unpacked directory of the layer with diffID.
func (s *Store) LayerDir(diffID string) string {
	return s.path("layers", hexOf(diffID), "diff")
}

func (s *Store) hasLayer(diffID string) bool {
	_, err := os.Stat(s.path("layers", hexOf(diffID), "layer.json"))
	return err == nil
}

func (s *Store) readLayerInfo(diffID string) (*layerInfo, error) {
	data, err := os.ReadFile(s.path("layers", hexOf(diffID), "layer.json"))
	if err != nil {
		return nil, err
	}
	var li layerInfo
	return &li, json.Unmarshal(data, &li)
}

func (s *Store) blobPath(digest string) string { return s.path("blobs", "sha256", hexOf(digest)) }

func (s *Store) hasBlob(digest string) bool {
	_, err := os.Stat(s.blobPath(digest))
	return err == nil
}

// putBlob stores small content (manifests, configs) and returns its digest.
func (s *Store) putBlob(data []byte) (string, error) {
	sum := sha256.Sum256(data)
	d := "sha256:" + hex.EncodeToString(sum[:])
	if s.hasBlob(d) {
		return d, nil
	}
	return d, atomicfile.WriteFileSync(s.blobPath(d), data, 0o600)
}

func (s *Store) readBlob(digest string) ([]byte, error) {
	data, err := os.ReadFile(s.blobPath(digest))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", short(digest), ErrNotFound)
	}
	return data, err
}

// layerSource is one layer to store: its identity and a way to read its blob.
type layerSource struct {
	diffID    string
	digest    string
	mediaType string
	size      int64
	open      func() (io.ReadCloser, error) // the blob, as stored in the registry or archive
}

// streamLayer adapts a blob reader to partial.CompressedLayer so that
// go-containerregistry picks the decompressor (gzip, zstd or none).
type streamLayer struct {
	rc io.ReadCloser
	ls *layerSource
}

func (l *streamLayer) Digest() (v1.Hash, error)           { return v1.NewHash(l.ls.digest) }
func (l *streamLayer) Compressed() (io.ReadCloser, error) { return l.rc, nil }
func (l *streamLayer) Size() (int64, error)               { return l.ls.size, nil }
func (l *streamLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.ls.mediaType), nil
}
func (l *streamLayer) DiffID() (v1.Hash, error) { return v1.NewHash(l.ls.diffID) }

// ensureLayer unpacks a layer unless it already is. It reports whether it did
// any work (false: "Already exists").
func (s *Store) ensureLayer(ctx context.Context, src *layerSource, status string, progress func(Progress)) (bool, error) {
	if s.hasLayer(src.diffID) {
		return false, nil
	}
	unlock, err := s.lock("layer-"+hexOf(src.diffID), true)
	if err != nil {
		return false, err
	}
	defer unlock()
	if s.hasLayer(src.diffID) { // another pull finished it while we waited
		return false, nil
	}

	// Read the blob from the store when we already have it.
	open := src.open
	local := s.hasBlob(src.digest)
	if local {
		open = func() (io.ReadCloser, error) { return os.Open(s.blobPath(src.digest)) }
	}
	rc, err := open()
	if err != nil {
		return false, err
	}
	defer rc.Close()

	tmp, err := os.MkdirTemp(s.path("tmp"), "layer-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)

	// One pass: blob bytes go to the blob file and its hash, the decompressed
	// stream to the diff ID hash and the unpacker.
	blobHash := sha256.New()
	var sinks []io.Writer
	sinks = append(sinks, blobHash)
	var blobFile *os.File
	if !local {
		blobFile, err = os.Create(filepath.Join(tmp, "blob"))
		if err != nil {
			return false, err
		}
		defer blobFile.Close()
		sinks = append(sinks, blobFile)
	}
	counted := &countingReader{r: rc, total: src.size, id: short(src.digest), status: status, progress: progress}
	tee := io.TeeReader(counted, io.MultiWriter(sinks...))
	ur, err := decompress(tee, src)
	if err != nil {
		return false, fmt.Errorf("layer %s: %w", short(src.digest), err)
	}
	var closeOnce sync.Once
	closeUR := func() (err error) {
		closeOnce.Do(func() { err = ur.Close() })
		return err
	}
	defer closeUR()
	diffHash := sha256.New()
	ut := io.TeeReader(ur, diffHash)

	diff := filepath.Join(tmp, "diff")
	if err := os.Mkdir(diff, 0o755); err != nil {
		return false, err
	}
	st, err := unpack.Apply(ctx, diff, ut)
	if err != nil {
		return false, fmt.Errorf("layer %s: %w", short(src.digest), err)
	}
	// The tar may end before the stream does (padding); hash all of both.
	if _, err := io.Copy(io.Discard, ut); err != nil {
		return false, fmt.Errorf("layer %s: %w", short(src.digest), err)
	}
	// Closed first: pgzip's goroutine reads ahead from tee.
	if err := closeUR(); err != nil {
		return false, fmt.Errorf("layer %s: %w", short(src.digest), err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return false, fmt.Errorf("layer %s: %w", short(src.digest), err)
	}
	if got := sumOf(blobHash); src.digest != "" && got != src.digest {
		return false, fmt.Errorf("layer %s: blob digest mismatch: got %s", src.digest, got)
	}
	if got := sumOf(diffHash); got != src.diffID {
		return false, fmt.Errorf("layer %s: diff ID mismatch: config says %s, content is %s", short(src.digest), src.diffID, got)
	}
	blob := ""
	if blobFile != nil {
		if err := blobFile.Close(); err != nil {
			return false, err
		}
		blob = blobFile.Name()
	}
	info := layerInfo{DiffID: src.diffID, Digest: src.digest, MediaType: src.mediaType, Size: counted.n, Unpacked: st.Bytes}
	if err := s.placeLayer(tmp, blob, info); err != nil {
		return false, err
	}
	return true, nil
}

// placeLayer moves a layer unpacked into tmp/diff into the store, its blob
// first (from the file blob, unless that is "") so that a layer in the store
// always has the blob its layer.json names. The caller holds the layer's lock.
func (s *Store) placeLayer(tmp, blob string, info layerInfo) error {
	if blob != "" {
		if err := os.Rename(blob, s.blobPath(info.Digest)); err != nil {
			return err
		}
	}
	if err := writeJSONAtomic(filepath.Join(tmp, "layer.json"), info); err != nil {
		return err
	}
	final := s.path("layers", hexOf(info.DiffID))
	// A leftover from a crash has no layer.json: clear it before the rename.
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// decompress returns the tar stream of a layer blob. A gzip one is read by
// klauspost's pgzip: about 30% less CPU than compress/gzip, and it
// decompresses ahead on a goroutine of its own, beside the unpacking.
// go-containerregistry handles the rest (zstd, or none).
func decompress(r io.Reader, src *layerSource) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return pgzip.NewReader(br)
	}
	cl, err := partial.CompressedToLayer(&streamLayer{rc: io.NopCloser(br), ls: src})
	if err != nil {
		return nil, err
	}
	return cl.Uncompressed()
}

func sumOf(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

// countingReader reports download progress.
type countingReader struct {
	r        io.Reader
	n, total int64
	last     int64
	id       string
	status   string
	progress func(Progress)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && (c.n-c.last >= 512<<10 || (err == io.EOF && c.n != c.last)) {
		c.last = c.n
		c.progress(Progress{ID: c.id, Status: c.status, Current: c.n, Total: c.total})
	}
	return n, err
}
