package dockerconfig

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServerKey(t *testing.T) {
	for in, want := range map[string]string{
		"":                            HubServer,
		"docker.io":                   HubServer,
		"index.docker.io":             HubServer,
		"https://index.docker.io/v1/": HubServer,
		"localhost:5000":              "localhost:5000",
		"https://ghcr.io":             "ghcr.io",
		"http://127.0.0.1:5000/v2/":   "127.0.0.1:5000",
	} {
		if got := ServerKey(in); got != want {
			t.Errorf("ServerKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStoreKeepsOtherSettings(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	orig := `{"psFormat": "table {{.ID}}", "auths": {"ghcr.io": {"auth": "eDp5"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Store("docker.io", "me", "pw:with:colons"); err != nil {
		t.Fatal(err)
	}
	cfg, ok, err := Lookup("index.docker.io")
	if err != nil || !ok || cfg.Username != "me" || cfg.Password != "pw:with:colons" {
		t.Fatalf("Lookup = %+v %v %v", cfg, ok, err)
	}
	var raw map[string]json.RawMessage
	data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["psFormat"]) != `"table {{.ID}}"` {
		t.Errorf("psFormat lost: %s", data)
	}
	if cfg, ok, _ := Lookup("ghcr.io"); !ok || cfg.Username != "x" || cfg.Password != "y" {
		t.Errorf("ghcr.io entry lost: %s", data)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "config.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v", fi.Mode())
	}
	if ok, err := Remove("docker.io"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, ok, _ := Lookup("docker.io"); ok {
		t.Error("credentials left after Remove")
	}
}

// fakeHelper is docker-credential-test: a credential helper keeping each
// server's credentials as JSON in a file under $FAKE_HELPER_DIR, and every
// command it was given in $FAKE_HELPER_DIR/log.
const fakeHelper = `#!/bin/sh
set -e
echo "$1" >> "$FAKE_HELPER_DIR/log"
in=$(cat)
case "$1" in
store)
	url=$(printf '%s' "$in" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p')
	printf '%s' "$in" > "$FAKE_HELPER_DIR/$(printf '%s' "$url" | sha256sum | cut -c1-16)" ;;
get|erase)
	f="$FAKE_HELPER_DIR/$(printf '%s' "$in" | sha256sum | cut -c1-16)"
	if [ ! -f "$f" ]; then echo "credentials not found in native keychain"; exit 1; fi
	if [ "$1" = get ]; then cat "$f"; else rm "$f"; fi ;;
*)
	echo "unknown action $1"; exit 1 ;;
esac
`

// TestCredentialHelper: with credsStore or credHelpers set, credentials go
// to the helper (store, get, erase) and config.json keeps only an empty
// entry; an "auths" password from before the helper is replaced.
func TestCredentialHelper(t *testing.T) {
	bin, store := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-test"), []byte(fakeHelper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_HELPER_DIR", store)
	for _, tc := range []struct {
		name, config, server string
	}{
		{"credsStore", `{"credsStore": "test", "auths": {"https://index.docker.io/v1/": {"auth": "b2xkOm9sZHB3"}}}`, "docker.io"},
		{"credHelpers", `{"credsStore": "absent", "credHelpers": {"localhost:5000": "test"}}`, "localhost:5000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("DOCKER_CONFIG", dir)
			os.Remove(filepath.Join(store, "log"))
			cfgPath := filepath.Join(dir, "config.json")
			if err := os.WriteFile(cfgPath, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := Store(tc.server, "me", "s3cret"); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(cfgPath)
			var cfg struct {
				Auths map[string]map[string]string `json:"auths"`
			}
			if err := json.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			if e, ok := cfg.Auths[ServerKey(tc.server)]; !ok || len(e) != 0 {
				t.Errorf("config.json: want an empty entry for %s: %s", ServerKey(tc.server), data)
			}
			if strings.Contains(string(data), "s3cret") || strings.Contains(string(data), "b2xkOm9sZHB3") {
				t.Errorf("a password is in config.json: %s", data)
			}
			got, ok, err := Lookup(tc.server)
			if err != nil || !ok || got.Username != "me" || got.Password != "s3cret" {
				t.Fatalf("Lookup = %+v %v %v", got, ok, err)
			}
			if found, err := Remove(tc.server); !found || err != nil {
				t.Fatalf("Remove = %v %v", found, err)
			}
			if _, ok, err := Lookup(tc.server); ok || err != nil {
				t.Fatalf("after Remove: Lookup = %v %v", ok, err)
			}
			if found, err := Remove(tc.server); found || err != nil {
				t.Fatalf("second Remove = %v %v", found, err)
			}
			log, _ := os.ReadFile(filepath.Join(store, "log"))
			if want := "store\nget\nget\nerase\nget\nget\n"; string(log) != want {
				t.Errorf("helper calls:\n%s\nwant:\n%s", log, want)
			}
		})
	}
}

// TestCredentialHelperFails: a helper that fails is an error, not "no
// credentials".
func TestCredentialHelperFails(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("PATH", t.TempDir())
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credsStore": "missing"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Lookup("docker.io"); err == nil {
		t.Error("Lookup through a missing helper succeeded")
	}
	if err := Store("docker.io", "me", "pw"); err == nil {
		t.Error("Store through a missing helper succeeded")
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "config.json")); strings.Contains(string(data), "auth\"") {
		t.Errorf("Store fell back to config.json: %s", data)
	}
}
