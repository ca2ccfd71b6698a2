package image

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ResolveDigest returns the digest ref names in its repository, the one a
// pull by digest would fetch: a reference that carries one gives it, an
// image in the store that was pulled from ref's repository gives the digest
// it was pulled at, and anything else is asked of the registry (a HEAD of
// the manifest, so nothing is downloaded). An image the store has only
// built, loaded or imported has no digest in any repository until it is
// pushed, so the registry is asked about it too.
func (s *Store) ResolveDigest(ctx context.Context, ref string, o PullOptions) (string, error) {
	r, err := o.parse(ref)
	if err != nil {
		return "", err
	}
	if d, ok := r.(name.Digest); ok {
		return d.DigestStr(), nil
	}
	if img, err := s.Image(canonical(r)); err == nil {
		repo := repoName(r) + "@"
		for _, d := range img.RepoDigests {
			if digest, ok := strings.CutPrefix(d, repo); ok {
				return digest, nil
			}
		}
	} else if !errors.Is(err, ErrNotFound) {
		return "", err
	}
	desc, err := remote.Head(r, o.remoteOptions(ctx)...)
	if err != nil {
		// Some registries refuse HEAD of a manifest: GET it then.
		full, gerr := remote.Get(r, o.remoteOptions(ctx)...)
		if gerr != nil {
			return "", fmt.Errorf("failed to resolve digest for %s: %w", canonical(r), pullError(ref, gerr))
		}
		return full.Digest.String(), nil
	}
	return desc.Digest.String(), nil
}
