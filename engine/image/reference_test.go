package image

import "testing"

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
