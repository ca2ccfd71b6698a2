package image

import (
	"strings"
	"testing"
)

func TestCanonicalNames(t *testing.T) {
	tests := []struct{ in, canonical, familiar string }{
		{"nginx", "docker.io/library/nginx:latest", "nginx:latest"},
		{"nginx:1.27", "docker.io/library/nginx:1.27", "nginx:1.27"},
		{"docker.io/library/nginx", "docker.io/library/nginx:latest", "nginx:latest"},
		{"index.docker.io/library/nginx:2", "docker.io/library/nginx:2", "nginx:2"},
		{"bitnami/redis", "docker.io/bitnami/redis:latest", "bitnami/redis:latest"},
		{"localhost:5000/app", "localhost:5000/app:latest", "localhost:5000/app:latest"},
		{"127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:v1"},
		{"ghcr.io/o/r@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			"ghcr.io/o/r@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			"ghcr.io/o/r@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	}
	for _, tc := range tests {
		r, err := ParseReference(tc.in, false)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := canonical(r); got != tc.canonical {
			t.Errorf("canonical(%s) = %s, want %s", tc.in, got, tc.canonical)
		}
		if got := FamiliarName(canonical(r)); got != tc.familiar {
			t.Errorf("familiar(%s) = %s, want %s", tc.in, got, tc.familiar)
		}
	}
	if _, err := ParseReference("UPPER/case", false); err == nil {
		t.Error("accepted an invalid reference")
	}
}

func TestIsInsecure(t *testing.T) {
	tests := []struct {
		registry string
		flags    []string
		want     bool
	}{
		{"localhost:5000", nil, true},
		{"127.0.0.1:5000", nil, true},
		{"127.0.0.1", nil, true},
		{"index.docker.io", nil, false},
		{"registry.lan:5000", nil, false},
		{"registry.lan:5000", []string{"registry.lan:5000"}, true},
		{"registry.lan:5000", []string{"http://registry.lan:5000/"}, true},
		{"registry.lan", []string{"registry.lan"}, true},
		{"other.lan", []string{"registry.lan"}, false},
	}
	for _, tc := range tests {
		if got := isInsecure(tc.registry, tc.flags); got != tc.want {
			t.Errorf("isInsecure(%s, %v) = %v, want %v", tc.registry, tc.flags, got, tc.want)
		}
	}
}

func TestIDShapes(t *testing.T) {
	full := strings.Repeat("0123456789abcdef", 4)
	for _, c := range []struct {
		s            string
		full, prefix bool
	}{
		{full, true, true},
		{"sha256:" + full, true, true},
		{"sha256:sha256:" + full, false, false},
		{full + "0", false, false},
		{"abc", false, true},
		{"sha256:abc", false, true},
		{"ABC", false, false},
		{"", false, false},
		{"sha256:", false, false},
		{"nginx", false, false},
	} {
		if got := isFullID(c.s); got != c.full {
			t.Errorf("isFullID(%q) = %v", c.s, got)
		}
		if got := isIDPrefix(c.s); got != c.prefix {
			t.Errorf("isIDPrefix(%q) = %v", c.s, got)
		}
	}
	for id, ok := range map[string]bool{"a": true, "build-1f": true, "a_b.c-d": true, "-a": false, ".a": false, "": false, "a/b": false, strings.Repeat("a", 128): true, strings.Repeat("a", 129): false} {
		if got := validContainerID(id); got != ok {
			t.Errorf("validContainerID(%q) = %v", id, got)
		}
	}
}
