package image

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

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
// are stored, so that the registry's manifest digest is the store's. It
// returns that digest.
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
	img, err := s.V1Image(ref)
	if err != nil {
		return "", err
	}
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
