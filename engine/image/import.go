package image

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ImportOptions tune Import.
type ImportOptions struct {
	// Changes are Dockerfile instructions applied to the config, as
	// `docker import --change`: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE,
	// LABEL, VOLUME, STOPSIGNAL.
	Changes  []string
	Message  string    // history comment
	Created  time.Time // zero: now
	Progress ProgressFunc

	// Config is the configuration to start from, before Changes (commit
	// keeps its container's); nil starts from an empty one.
	Config *v1.Config
	Author string
}

// Import makes a one-layer image from a rootfs tarball (plain or compressed)
// and tags it ref (may be empty: an untagged image).
func (s *Store) Import(ctx context.Context, tarPath, ref string, o ImportOptions) (*Image, error) {
	var tags []string
	if ref != "" {
		r, err := ParseReference(ref, false)
		if err != nil {
			return nil, err
		}
		if _, ok := r.(name.Tag); !ok {
			return nil, invalidf("cannot import as a digest reference %q", ref)
		}
		tags = []string{canonical(r)}
	}
	blob, cleanup, err := s.compressedRootfs(tarPath)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	defer cleanup()
	layer, err := tarball.LayerFromFile(blob)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	if o.Config != nil {
		cf.Config = *o.Config.DeepCopy()
	}
	cf.Author = o.Author
	created := o.Created
	if created.IsZero() {
		created = time.Now().UTC()
	}
	cf.Created = v1.Time{Time: created}
	cf.OS, cf.Architecture = DefaultPlatform.OS, DefaultPlatform.Architecture
	if err := ApplyChanges(&cf.Config, o.Changes); err != nil {
		return nil, err
	}
	comment := o.Message
	if comment == "" {
		comment = "Imported from " + tarPath
	}
	cf.History = []v1.History{{Created: cf.Created, Comment: comment}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return s.commit(ctx, img, commitOptions{tags: tags, progress: o.Progress, busy: StatusLoadingLayer, done: StatusLayerComplete})
}

// compressedRootfs returns a gzip-compressed version of the tarball at p:
// p itself if it already is, else a temp file in the store, compressed once
// (go-containerregistry would otherwise compress it once per read).
func (s *Store) compressedRootfs(p string) (string, func(), error) {
	f, err := os.Open(p)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return p, func() {}, nil
	}
	tmp, err := os.CreateTemp(s.path("tmp"), "import-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(tmp.Name()) }
	zw, err := gzip.NewWriterLevel(tmp, gzip.BestSpeed)
	if err != nil {
		tmp.Close()
		cleanup()
		return "", nil, err
	}
	_, err = io.Copy(zw, br)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return tmp.Name(), cleanup, nil
}

// ApplyChanges applies Dockerfile instructions (the `--change` values of
// docker import and commit) to a config.
func ApplyChanges(c *v1.Config, changes []string) error {
	for _, ch := range changes {
		instr, rest, _ := strings.Cut(strings.TrimSpace(ch), " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "CMD":
			c.Cmd = execOrShell(rest)
		case "ENTRYPOINT":
			c.Entrypoint = execOrShell(rest)
		case "ENV":
			kvs, err := parseKeyValues(rest, true)
			if err != nil {
				return invalidf("--change %q: %v", ch, err)
			}
			for _, kv := range kvs {
				c.Env = setEnv(c.Env, kv[0], kv[1])
			}
		case "LABEL":
			kvs, err := parseKeyValues(rest, false)
			if err != nil {
				return invalidf("--change %q: %v", ch, err)
			}
			if c.Labels == nil {
				c.Labels = map[string]string{}
			}
			for _, kv := range kvs {
				c.Labels[kv[0]] = kv[1]
			}
		case "WORKDIR":
			c.WorkingDir = rest
		case "USER":
			c.User = rest
		case "STOPSIGNAL":
			c.StopSignal = rest
		case "EXPOSE":
			if c.ExposedPorts == nil {
				c.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				c.ExposedPorts[strings.ToLower(p)] = struct{}{}
			}
		case "VOLUME":
			if c.Volumes == nil {
				c.Volumes = map[string]struct{}{}
			}
			var vols []string
			if err := json.Unmarshal([]byte(rest), &vols); err != nil {
				vols = strings.Fields(rest)
			}
			for _, v := range vols {
				c.Volumes[v] = struct{}{}
			}
		default:
			return invalidf("--change %q: unsupported instruction %q (want CMD, ENTRYPOINT, ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME or STOPSIGNAL)", ch, instr)
		}
	}
	return nil
}

// execOrShell reads a JSON array (exec form), else wraps the text for
// /bin/sh -c (shell form), as the Dockerfile does.
func execOrShell(s string) []string {
	var args []string
	if strings.HasPrefix(s, "[") && json.Unmarshal([]byte(s), &args) == nil {
		return args
	}
	return []string{"/bin/sh", "-c", s}
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if strings.HasPrefix(e, k+"=") {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// parseKeyValues reads `k=v k2="v 2"` or, when legacy is allowed, `k v w`.
func parseKeyValues(s string, legacy bool) ([][2]string, error) {
	words, err := splitWords(s)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("missing arguments")
	}
	if !strings.Contains(words[0], "=") {
		if !legacy {
			return nil, fmt.Errorf("want key=value")
		}
		// ENV key value with spaces
		k, v, _ := strings.Cut(s, " ")
		return [][2]string{{k, strings.TrimSpace(v)}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// splitWords splits on blanks, honouring double and single quotes and
// backslash escapes, as a Dockerfile's ENV and LABEL do. It is not
// go-shellwords on purpose: that parser stops silently at an unquoted
// ; & | < or > and rejects ( and ), all ordinary characters in a value such
// as ENV URL=http://h/?a=1&b=2.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	esc := false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
