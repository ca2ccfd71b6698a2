package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// Progress statuses, as docker prints them.
const (
	StatusWaiting       = "Waiting"
	StatusExists        = "Already exists"
	StatusDownloading   = "Downloading"
	StatusComplete      = "Pull complete"
	StatusLoadingLayer  = "Loading layer"
	StatusLayerComplete = "Layer complete"
)

// Progress is one step of storing a layer. ID is the short blob digest.
type Progress struct {
	ID      string
	Status  string
	Current int64 // bytes read of the blob
	Total   int64 // blob size, 0 when unknown
}

// ProgressFunc receives progress events; it may be called from several
// goroutines at once.
type ProgressFunc func(Progress)

// parallelLayers is how many layers are fetched and unpacked at once, as docker.
const parallelLayers = 3

type commitOptions struct {
	tags       []string // canonical repo:tag keys to point at the image
	repoDigest string   // canonical repo@digest, for pulls
	progress   ProgressFunc
	busy       string // status while a layer is being stored
	done       string // status once it is
}

// commit stores img (blobs, layers, record) and points tags at it.
func (s *Store) commit(ctx context.Context, img v1.Image, o commitOptions) (*Image, error) {
	unlockGC, err := s.lock("gc", false)
	if err != nil {
		return nil, err
	}
	defer unlockGC()
	return s.commitLocked(ctx, img, o)
}

// commitLocked is commit for a caller that holds the gc lock.
func (s *Store) commitLocked(ctx context.Context, img v1.Image, o commitOptions) (*Image, error) {
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("parse image config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(manifest.Layers) {
		return nil, invalidf("image has %d layers but its config lists %d diff IDs", len(manifest.Layers), len(cfg.RootFS.DiffIDs))
	}

	sources := make([]*layerSource, len(manifest.Layers))
	for i, d := range manifest.Layers {
		desc := d
		sources[i] = &layerSource{
			diffID:    cfg.RootFS.DiffIDs[i].String(),
			digest:    desc.Digest.String(),
			mediaType: string(desc.MediaType),
			size:      desc.Size,
			open: func() (io.ReadCloser, error) {
				l, err := img.LayerByDigest(desc.Digest)
				if err != nil {
					return nil, err
				}
				return l.Compressed()
			},
		}
	}
	progress := o.progress
	if progress == nil {
		progress = func(Progress) {}
	}
	for _, src := range sources {
		if s.hasLayer(src.diffID) {
			progress(Progress{ID: short(src.digest), Status: StatusExists})
		} else {
			progress(Progress{ID: short(src.digest), Status: StatusWaiting, Total: src.size})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelLayers)
	seen := map[string]bool{}
	for _, src := range sources {
		if seen[src.diffID] {
			continue
		}
		seen[src.diffID] = true
		g.Go(func() error {
			did, err := s.ensureLayer(gctx, src, o.busy, progress)
			if err != nil {
				return err
			}
			if did {
				progress(Progress{ID: short(src.digest), Status: o.done, Current: src.size, Total: src.size})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	id, err := s.putBlob(rawConfig)
	if err != nil {
		return nil, err
	}
	mdigest, err := s.putBlob(rawManifest)
	if err != nil {
		return nil, err
	}
	rec := &Image{
		ID:             id,
		ManifestDigest: mdigest,
		MediaType:      string(mt),
		Created:        cfg.Created.Time,
		Stored:         time.Now().UTC(),
		Architecture:   cfg.Architecture,
		OS:             cfg.OS,
		Config:         configFrom(cfg.Config),
	}
	for _, src := range sources {
		rec.Layers = append(rec.Layers, Layer{DiffID: src.diffID, Digest: src.digest, MediaType: src.mediaType, Size: src.size})
		if li, err := s.readLayerInfo(src.diffID); err == nil {
			rec.Size += li.Unpacked
		}
	}
	err = s.updateRefs(func(refs map[string]string) error {
		old, err := s.readRecord(id)
		if err == nil {
			rec.RepoDigests = old.RepoDigests
			rec.Stored = old.Stored
		}
		if o.repoDigest != "" && !contains(rec.RepoDigests, o.repoDigest) {
			rec.RepoDigests = append(rec.RepoDigests, o.repoDigest)
			sort.Strings(rec.RepoDigests)
		}
		// The same image again (a rebuild that changed nothing) leaves
		// its record as it is: no write, no fsync.
		if old == nil || !sameRecord(old, rec) {
			if err := s.writeRecord(rec); err != nil {
				return err
			}
		}
		for _, t := range o.tags {
			refs[t] = id
		}
		rec.RepoTags = tagsOf(refs, id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// sameRecord reports whether two records would be written the same.
func sameRecord(a, b *Image) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func configFrom(c v1.Config) Config {
	out := Config{
		User:       c.User,
		Env:        c.Env,
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		WorkingDir: c.WorkingDir,
		Labels:     c.Labels,
		StopSignal: c.StopSignal,
		Shell:      c.Shell,
	}
	for p := range c.ExposedPorts {
		out.ExposedPorts = append(out.ExposedPorts, p)
	}
	sort.Strings(out.ExposedPorts)
	for v := range c.Volumes {
		out.Volumes = append(out.Volumes, v)
	}
	sort.Strings(out.Volumes)
	if h := c.Healthcheck; h != nil {
		out.Healthcheck = &Healthcheck{
			Test:        h.Test,
			Interval:    h.Interval,
			Timeout:     h.Timeout,
			StartPeriod: h.StartPeriod,
			Retries:     h.Retries,
		}
	}
	return out
}
