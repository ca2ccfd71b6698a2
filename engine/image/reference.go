package image

import (
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berthrun/berth/internal/names"
)

// Docker Hub's names: what users type and what the store keeps.
const (
	hubDomain    = "docker.io"
	hubRegistry  = "index.docker.io"
	officialRepo = "library/"
)

// isFullID reports whether ref is a whole image ID, with or without
// "sha256:"; isIDPrefix whether it is one's start. (Not regular
// expressions: compiling them cost every command's start.)
func isFullID(ref string) bool {
	h := strings.TrimPrefix(ref, "sha256:")
	return len(h) == 64 && names.IsLowerHex(h)
}

func isIDPrefix(ref string) bool {
	h := strings.TrimPrefix(ref, "sha256:")
	return len(h) >= 1 && len(h) <= 64 && names.IsLowerHex(h)
}

// ParseReference reads a docker-style image reference ("nginx",
// "localhost:5000/app:v1", "repo@sha256:...") with Docker Hub defaults.
// Docker's grammar (distribution/reference) is checked first: the registry
// library alone takes "../../x", "/etc/passwd" and "a//b".
func ParseReference(ref string, insecure bool) (name.Reference, error) {
	if err := names.ImageRef(ref); err != nil {
		return nil, invalidf("%v", err)
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, invalidf("invalid reference format %q: %v", ref, err)
	}
	return r, nil
}

// repoName is the store's spelling of a repository: "docker.io/library/nginx".
func repoName(r name.Reference) string {
	reg := r.Context().RegistryStr()
	if reg == hubRegistry {
		reg = hubDomain
	}
	return reg + "/" + r.Context().RepositoryStr()
}

// canonical is the store's key for a reference: "docker.io/library/nginx:latest"
// or "docker.io/library/nginx@sha256:...".
func canonical(r name.Reference) string {
	switch t := r.(type) {
	case name.Tag:
		return repoName(r) + ":" + t.TagStr()
	case name.Digest:
		return repoName(r) + "@" + t.DigestStr()
	}
	return r.Name()
}

// FamiliarName shortens a canonical repository or reference the way docker
// prints it: "docker.io/library/nginx:latest" -> "nginx:latest".
func FamiliarName(s string) string {
	if rest, ok := strings.CutPrefix(s, hubDomain+"/"); ok {
		return strings.TrimPrefix(rest, officialRepo)
	}
	return s
}

func short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
