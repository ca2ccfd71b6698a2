package testimage

import (
	"archive/tar"
	"context"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an in-process registry on 127.0.0.1 that counts requests.
type Registry struct {
	Host string // 127.0.0.1:PORT
	srv  *httptest.Server

	mu       sync.Mutex
	requests []string // "METHOD PATH"
}

// RegistryOption customises StartRegistry.
type RegistryOption func(*registryOptions)

type registryOptions struct{ user, pass string }

// WithBasicAuth makes the registry demand HTTP basic auth with user and pass.
func WithBasicAuth(user, pass string) RegistryOption {
	return func(o *registryOptions) { o.user, o.pass = user, pass }
}

// StartRegistry starts a registry for the test's lifetime.
func StartRegistry(t testing.TB, opts ...RegistryOption) *Registry {
	t.Helper()
	var o registryOptions
	for _, opt := range opts {
		opt(&o)
	}
	r := &Registry{}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		if o.user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != o.user || p != o.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="testimage"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.Host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

// Requests returns the requests seen so far, as "METHOD PATH".
func (r *Registry) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// BlobGets counts GET requests for blobs (layers and configs).
func (r *Registry) BlobGets() int {
	n := 0
	for _, q := range r.Requests() {
		if strings.HasPrefix(q, "GET ") && strings.Contains(q, "/blobs/sha256:") {
			n++
		}
	}
	return n
}

// Reset forgets the requests counted so far.
func (r *Registry) Reset() {
	r.mu.Lock()
	r.requests = nil
	r.mu.Unlock()
}

// Push pushes img as HOST/repo (repo like "busybox:latest").
func (r *Registry) Push(ctx context.Context, repo string, img v1.Image, auth ...authn.Authenticator) (string, error) {
	ref, err := name.ParseReference(r.Host + "/" + repo)
	if err != nil {
		return "", err
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	if len(auth) > 0 {
		opts = append(opts, remote.WithAuth(auth[0]))
	}
	return ref.String(), remote.Write(ref, img, opts...)
}

// PushIndex pushes an index of images as HOST/repo.
func (r *Registry) PushIndex(ctx context.Context, repo string, idx v1.ImageIndex) (string, error) {
	ref, err := name.ParseReference(r.Host + "/" + repo)
	if err != nil {
		return "", err
	}
	return ref.String(), remote.WriteIndex(ref, idx, remote.WithContext(ctx))
}

// WriteOCIArchive writes img as an OCI image-layout tar archive, annotated
// with ref as docker and containerd do.
func WriteOCIArchive(p, ref string, img v1.Image) error {
	dir, err := os.MkdirTemp("", "testimage-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          ref,
		"org.opencontainers.image.ref.name": ref,
	})); err != nil {
		return err
	}
	return tarDir(dir, p)
}

// tarDir writes the files under dir as a tar at p.
func tarDir(dir, p string) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(fp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, fp)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			src, err := os.Open(fp)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, src)
			return err
		}
		return nil
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
