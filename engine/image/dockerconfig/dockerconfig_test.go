package dockerconfig

import (
	"encoding/json"
	"os"
	"path/filepath"
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
