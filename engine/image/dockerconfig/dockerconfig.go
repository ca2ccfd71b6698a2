// Package dockerconfig reads and writes registry credentials as docker
// does: through the credential helper config.json names ("credHelpers" for
// one registry, else "credsStore"), else in config.json's "auths"
// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json), so berth and
// docker share logins and a password never lands in the file when a helper
// is configured.
package dockerconfig

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berthrun/berth/internal/atomicfile"
)

// HubServer is the key docker uses for Docker Hub credentials.
const HubServer = "https://index.docker.io/v1/"

// Dir is the directory of config.json: $DOCKER_CONFIG, else ~/.docker.
func Dir() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".docker")
}

// ServerKey is the key under "auths" for a server as the user typed it:
// Docker Hub's aliases become HubServer, others their host[:port].
func ServerKey(server string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	s = strings.TrimSuffix(s, "/")
	if host, _, ok := strings.Cut(s, "/"); ok {
		s = host
	}
	switch s {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io":
		return HubServer
	}
	return s
}

type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// file is config.json, keeping keys berth does not know untouched.
type file struct {
	raw         map[string]json.RawMessage
	auths       map[string]authEntry
	credsStore  string
	credHelpers map[string]string
}

// helper returns the credential helper program for a server key, or nil
// when its credentials live in "auths".
func (f *file) helper(key string) client.ProgramFunc {
	name := f.credHelpers[key]
	if name == "" {
		name = f.credsStore
	}
	if name == "" {
		return nil
	}
	return client.NewShellProgramFunc("docker-credential-" + name)
}

func load(dir string) (*file, error) {
	f := &file{raw: map[string]json.RawMessage{}, auths: map[string]authEntry{}}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return f, nil
	}
	if err := json.Unmarshal(data, &f.raw); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
	}
	for key, into := range map[string]any{"auths": &f.auths, "credsStore": &f.credsStore, "credHelpers": &f.credHelpers} {
		if v, ok := f.raw[key]; ok {
			if err := json.Unmarshal(v, into); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", filepath.Join(dir, "config.json"), key, err)
			}
		}
	}
	return f, nil
}

func (f *file) save(dir string) error {
	a, err := json.Marshal(f.auths)
	if err != nil {
		return err
	}
	f.raw["auths"] = a
	data, err := json.MarshalIndent(f.raw, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "config.json"), append(data, '\n'), 0o600)
}

// Store saves user and password for server: in the configured credential
// helper, with an empty "auths" entry left in config.json as docker leaves
// one (it lists the login and replaces any password stored before), or
// else in "auths" itself.
func Store(server, user, password string) error {
	dir := Dir()
	f, err := load(dir)
	if err != nil {
		return err
	}
	key := ServerKey(server)
	entry := authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	if h := f.helper(key); h != nil {
		if err := client.Store(h, &credentials.Credentials{ServerURL: key, Username: user, Secret: password}); err != nil {
			return fmt.Errorf("credentials for %s: %w", key, err)
		}
		entry = authEntry{}
	}
	f.auths[key] = entry
	return f.save(dir)
}

// Remove deletes server's credentials, from the credential helper if one
// is configured and from "auths". It reports whether there were any.
func Remove(server string) (bool, error) {
	dir := Dir()
	f, err := load(dir)
	if err != nil {
		return false, err
	}
	key := ServerKey(server)
	_, found := f.auths[key]
	if h := f.helper(key); h != nil {
		// Helpers answer "not found" to get in a way the client library
		// recognises, not to erase: ask first.
		_, err := client.Get(h, key)
		switch {
		case credentials.IsErrCredentialsNotFound(err):
		case err != nil:
			return false, fmt.Errorf("credentials for %s: %w", key, err)
		default:
			if err := client.Erase(h, key); err != nil {
				return false, fmt.Errorf("credentials for %s: %w", key, err)
			}
			found = true
		}
	}
	if _, ok := f.auths[key]; !ok {
		return found, nil
	}
	delete(f.auths, key)
	return found, f.save(dir)
}

// Lookup returns the credentials stored for server, if any.
func Lookup(server string) (authn.AuthConfig, bool, error) {
	f, err := load(Dir())
	if err != nil {
		return authn.AuthConfig{}, false, err
	}
	key := ServerKey(server)
	if h := f.helper(key); h != nil {
		return lookupHelper(h, key)
	}
	e, ok := f.auths[key]
	if !ok {
		// docker also accepts entries written with a scheme.
		for k, v := range f.auths {
			if ServerKey(k) == key {
				e, ok = v, true
				break
			}
		}
	}
	if !ok {
		return authn.AuthConfig{}, false, nil
	}
	cfg := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
	if e.Auth != "" {
		dec, err := base64.StdEncoding.DecodeString(e.Auth)
		if err != nil {
			return authn.AuthConfig{}, false, fmt.Errorf("credentials for %s: %w", key, err)
		}
		user, pass, found := strings.Cut(string(dec), ":")
		if !found {
			return authn.AuthConfig{}, false, fmt.Errorf("credentials for %s: malformed auth", key)
		}
		cfg.Username, cfg.Password = user, pass
	}
	return cfg, true, nil
}

// lookupHelper asks a credential helper for a server's credentials. A
// username of "<token>" marks an identity token, as docker stores those.
func lookupHelper(h client.ProgramFunc, key string) (authn.AuthConfig, bool, error) {
	c, err := client.Get(h, key)
	if credentials.IsErrCredentialsNotFound(err) {
		return authn.AuthConfig{}, false, nil
	}
	if err != nil {
		return authn.AuthConfig{}, false, fmt.Errorf("credentials for %s: %w", key, err)
	}
	if c.Username == tokenUser {
		return authn.AuthConfig{IdentityToken: c.Secret}, true, nil
	}
	return authn.AuthConfig{Username: c.Username, Password: c.Secret}, true, nil
}

// tokenUser is the username docker gives an identity token in a helper.
const tokenUser = "<token>"

// Keychain resolves credentials as Lookup does, then falls back to
// go-containerregistry's default keychain.
func Keychain() authn.Keychain { return keychain{} }

type keychain struct{}

func (keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	reg := r.RegistryStr()
	cfg, ok, err := Lookup(reg)
	if err != nil {
		return nil, err
	}
	if ok {
		return authn.FromConfig(cfg), nil
	}
	return authn.DefaultKeychain.Resolve(r)
}

// Login checks user and password against server's registry, as docker login
// does, and stores them on success. insecure allows plain HTTP.
func Login(ctx context.Context, server, user, password string, insecure bool, rt http.RoundTripper) error {
	host := ServerKey(server)
	if host == HubServer {
		host = name.DefaultRegistry
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return fmt.Errorf("invalid registry %q: %w", server, err)
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	t, err := transport.NewWithContext(ctx, reg, auth, rt, nil)
	if err != nil {
		return fmt.Errorf("login to %s: %w", server, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: t}).Do(req)
	if err != nil {
		return fmt.Errorf("login to %s: %w", server, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("login to %s: unauthorized: incorrect username or password", server)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login to %s: registry answered %s", server, resp.Status)
	}
	return Store(server, user, password)
}
