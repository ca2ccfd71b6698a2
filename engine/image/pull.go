package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berthrun/berth/engine/image/dockerconfig"
)

// PullOptions tune Pull.
type PullOptions struct {
	// InsecureRegistries are host[:port] names reached over plain HTTP.
	// localhost and 127.0.0.1 always are.
	InsecureRegistries []string
	// Keychain finds credentials; nil reads the docker config ($DOCKER_CONFIG
	// or ~/.docker/config.json).
	Keychain authn.Keychain
	// Platform of the image to pick from a multi-arch index; nil is linux/amd64.
	Platform *v1.Platform
	// Transport for registry requests; nil is http.DefaultTransport.
	Transport http.RoundTripper
	Progress  ProgressFunc
}

// PullResult tells what Pull did.
type PullResult struct {
	Image    *Image
	Ref      string // canonical name pulled
	Digest   string // digest the reference resolved to (index or manifest)
	UpToDate bool   // nothing was downloaded
}

// DefaultPlatform is the platform picked from multi-arch images.
var DefaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// Pull fetches ref from its registry into the store. If the reference still
// resolves to the digest the store has, no blob is downloaded; layers the
// store already has are never downloaded again.
func (s *Store) Pull(ctx context.Context, ref string, o PullOptions) (*PullResult, error) {
	r, err := o.parse(ref)
	if err != nil {
		return nil, err
	}
	key := canonical(r)
	desc, err := remote.Get(r, o.remoteOptions(ctx)...)
	if err != nil {
		return nil, pullError(ref, err)
	}
	repoDigest := repoName(r) + "@" + desc.Digest.String()
	var tags []string
	if _, ok := r.(name.Tag); ok {
		tags = []string{key}
	}

	if res, err := s.pullUpToDate(key, tags, repoDigest, desc.Digest.String()); res != nil || err != nil {
		if err == nil {
			res.Image, err = s.markPulled(res.Image.ID)
		}
		return res, err
	}

	img, err := desc.Image()
	if err != nil {
		return nil, pullError(ref, err)
	}
	rec, err := s.commit(ctx, img, commitOptions{
		tags: tags, repoDigest: repoDigest, progress: o.Progress,
		busy: StatusDownloading, done: StatusComplete,
	})
	if err != nil {
		return nil, pullError(ref, err)
	}
	if rec, err = s.markPulled(rec.ID); err != nil {
		return nil, err
	}
	return &PullResult{Image: rec, Ref: key, Digest: desc.Digest.String()}, nil
}

// parse reads ref, as insecure (plain HTTP) when its registry is one of
// o's or loopback.
func (o PullOptions) parse(ref string) (name.Reference, error) {
	r, err := ParseReference(ref, false)
	if err != nil {
		return nil, err
	}
	if isInsecure(r.Context().RegistryStr(), o.InsecureRegistries) {
		return ParseReference(ref, true)
	}
	return r, nil
}

// remoteOptions are the registry client's options for o.
func (o PullOptions) remoteOptions(ctx context.Context) []remote.Option {
	keychain := o.Keychain
	if keychain == nil {
		keychain = dockerconfig.Keychain()
	}
	platform := DefaultPlatform
	if o.Platform != nil {
		platform = *o.Platform
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(keychain),
		remote.WithPlatform(platform),
		remote.WithUserAgent("berth"),
	}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	return opts
}

// pullUpToDate finishes a pull whose digest the store already has: it only
// points the tag at the image. It returns nil if the image is not there.
func (s *Store) pullUpToDate(key string, tags []string, repoDigest, digest string) (*PullResult, error) {
	unlockGC, err := s.lock("gc", false)
	if err != nil {
		return nil, err
	}
	defer unlockGC()
	img := s.upToDate(repoDigest)
	if img == nil {
		return nil, nil
	}
	if len(tags) > 0 {
		if err := s.updateRefs(func(refs map[string]string) error {
			refs[key] = img.ID
			return nil
		}); err != nil {
			return nil, err
		}
	}
	img, err = s.Image(img.ID)
	if err != nil {
		return nil, err
	}
	return &PullResult{Image: img, Ref: key, Digest: digest, UpToDate: true}, nil
}

// upToDate returns the stored image whose repo digest is repoDigest, if all of
// its layers are still present.
func (s *Store) upToDate(repoDigest string) *Image {
	ids, err := s.listIDs()
	if err != nil {
		return nil
	}
	for _, id := range ids {
		img, err := s.readRecord(id)
		if err != nil || !contains(img.RepoDigests, repoDigest) {
			continue
		}
		for _, l := range img.Layers {
			if !s.hasLayer(l.DiffID) {
				return nil
			}
		}
		return img
	}
	return nil
}

func isInsecure(registry string, insecure []string) bool {
	host := registry
	if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	if host == "localhost" || host == "127.0.0.1" || host == "[::1]" {
		return true
	}
	for _, r := range insecure {
		r = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(r, "http://"), "https://"), "/")
		if r == registry || r == host {
			return true
		}
	}
	return false
}

// pullError says what failed in docker's words where a user would recognise them.
func pullError(ref string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("pull access denied for %s, repository does not exist or may require 'berth login': %w", ref, err)
		case http.StatusNotFound:
			return fmt.Errorf("%w: manifest for %s not found: %v", ErrNotFound, ref, err)
		}
	}
	return fmt.Errorf("pull %s: %w", ref, err)
}
