package names

import (
	"errors"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	tests := []struct {
		what  string
		check func(string) error
		name  string
		ok    bool
	}{
		{"project", Project, "myapp", true},
		{"project", Project, "my_app-2", true},
		{"project", Project, "0app", true},
		{"project", Project, "../../../var/tmp/x", false},
		{"project", Project, "a/b", false},
		{"project", Project, "..", false},
		{"project", Project, "MyApp", false},
		{"project", Project, "-app", false},
		{"project", Project, "", false},
		{"project", Project, "a\nb", false},
		{"service", Service, "web.1_x-y", true},
		{"service", Service, "..", false},
		{"service", Service, "a/b", false},
		{"container", Container, "my.web-1", true},
		{"container", Container, "../../x", false},
		{"container", Container, "a\nb", false},
		{"container", Container, strings.Repeat("a", 256), false},
		{"network", Network, "front_net", true},
		{"network", Network, "a/b", false},
		{"volume", Volume, "data", true},
		{"volume", Volume, "..", false},
		{"hostname", Hostname, "web.example.com", true},
		{"hostname", Hostname, "my_host", true},
		{"hostname", Hostname, "a\n1.2.3.4 evil", false},
		{"hostname", Hostname, "a/b", false},
		{"hostname", Hostname, strings.Repeat("a", 65), false},
		{"alias", Alias, "db.internal", true},
		{"alias", Alias, "db evil", false},
		{"alias", Alias, "", false},
		{"link", Link, "db", true},
		{"link", Link, "db:database", true},
		{"link", Link, "db:a\nb", false},
		{"link", Link, "../db", false},
		{"image", ImageRef, "busybox", true},
		{"image", ImageRef, "localhost:5000/a/b:1.0", true},
		{"image", ImageRef, "busybox@sha256:" + strings.Repeat("a", 64), true},
		{"image", ImageRef, "../../x", false},
		{"image", ImageRef, "/etc/passwd", false},
		{"image", ImageRef, "a//b", false},
		{"image", ImageRef, "UPPER", false},
		{"image", ImageRef, "", false},
		{"path", PathElem, "abc", true},
		{"path", PathElem, "..", false},
		{"path", PathElem, ".", false},
		{"path", PathElem, "", false},
		{"path", PathElem, "a/b", false},
		{"path", PathElem, "a\x00b", false},
	}
	for _, tt := range tests {
		err := tt.check(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("%s %q: err = %v, want ok = %v", tt.what, tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s %q: %v does not wrap ErrInvalid", tt.what, tt.name, err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s %q: error is more than one line: %q", tt.what, tt.name, err)
		}
	}
}

func TestExtraHost(t *testing.T) {
	tests := []struct {
		host, ip string
		ok       bool
	}{
		{"db", "10.0.0.2", true},
		{"db.local", "::1", true},
		{"gw", "host-gateway", true},
		{"db", "not-an-ip", false},
		{"a\n1.2.3.4 evil", "10.0.0.2", false},
		{"db", "10.0.0.2\nevil", false},
	}
	for _, tt := range tests {
		if err := ExtraHost(tt.host, tt.ip); (err == nil) != tt.ok {
			t.Errorf("ExtraHost(%q, %q) = %v, want ok = %v", tt.host, tt.ip, err, tt.ok)
		}
	}
}
