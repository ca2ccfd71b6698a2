// Command testregistry serves an in-memory registry on 127.0.0.1 with the
// busybox test image pushed to it, for trying `berth image pull` by hand:
//
//	go run ./internal/testimage/cmd/testregistry -addr 127.0.0.1:5000 [-user u -pass p]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berthrun/berth/internal/testimage"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "listen address (keep it on 127.0.0.1)")
	user := flag.String("user", "", "require basic auth with this user")
	pass := flag.String("pass", "", "password for -user")
	repo := flag.String("repo", "busybox:latest", "repository:tag to push the test image as")
	flag.Parse()

	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != *user || p != *pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="testregistry"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		reg.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal(http.Serve(ln, h)) }()

	img, err := testimage.Busybox()
	if err != nil {
		log.Fatal(err)
	}
	ref, err := name.ParseReference(ln.Addr().String() + "/" + *repo)
	if err != nil {
		log.Fatal(err)
	}
	opts := []remote.Option{remote.WithContext(context.Background())}
	if *user != "" {
		opts = append(opts, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: *user, Password: *pass})))
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "serving %s\n", ref)
	select {}
}
