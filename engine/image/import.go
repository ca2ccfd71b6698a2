package image

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"

	"github.com/berthrun/berth/engine/image/unpack"
)

// ImportOptions tune Import.
type ImportOptions struct {
	// Changes are Dockerfile instructions applied to the config, as
	// `docker import --change`: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE,
	// LABEL, VOLUME, STOPSIGNAL.
	Changes []string
	Message string    // history comment
	Created time.Time // zero: now
	// Progress receives "Loading layer" events while the tarball is read
	// and "Layer complete" at the end. Their ID is the tarball's file name:
	// the blob's digest is known only once it is all read.
	Progress ProgressFunc

	// Config is the configuration to start from, before Changes (commit
	// keeps its container's); nil starts from an empty one.
	Config *v1.Config
	Author string
}

// Import makes a one-layer image from a rootfs tarball (plain or compressed)
// and tags it ref (may be empty: an untagged image).
func (s *Store) Import(ctx context.Context, tarPath, ref string, o ImportOptions) (*Image, error) {
	tags, err := importTags(ref)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(tarPath)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	return s.importFrom(ctx, f, fi.Size(), tarPath, tags, o)
}

// ImportReader is Import of a tarball read from r (size bytes, 0 when
// unknown, for progress), such as standard input: it is read once, so it
// needs no copy in a file. source names it in the history ("-" for
// standard input, as docker) and in errors.
func (s *Store) ImportReader(ctx context.Context, r io.Reader, size int64, source, ref string, o ImportOptions) (*Image, error) {
	tags, err := importTags(ref)
	if err != nil {
		return nil, err
	}
	return s.importFrom(ctx, r, size, source, tags, o)
}

// importTags checks the reference an import is tagged with.
func importTags(ref string) ([]string, error) {
	if ref == "" {
		return nil, nil
	}
	named, err := ParseReference(ref, false)
	if err != nil {
		return nil, err
	}
	if _, ok := named.(name.Tag); !ok {
		return nil, invalidf("cannot import as a digest reference %q", ref)
	}
	return []string{canonical(named)}, nil
}

// importFrom stores the layer, then builds and commits the image around
// it. Like a pull's download, reading r holds the gc lock shared.
func (s *Store) importFrom(ctx context.Context, r io.Reader, size int64, source string, tags []string, o ImportOptions) (*Image, error) {
	// The layer and the record are made under one hold of the gc lock, so
	// no prune can take the layer between them.
	unlockGC, err := s.lock("gc", false)
	if err != nil {
		return nil, err
	}
	defer unlockGC()
	li, err := s.importLayer(ctx, r, size, filepath.Base(source), o.Progress)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", source, err)
	}
	if o.Progress != nil {
		o.Progress(Progress{ID: filepath.Base(source), Status: StatusLayerComplete})
	}
	layer, err := partial.CompressedToLayer(&importedLayer{s: s, li: li})
	if err != nil {
		return nil, err
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
		comment = "Imported from " + source
	}
	cf.History = []v1.History{{Created: cf.Created, Comment: comment}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	// The layer is stored: commit finds it and reads nothing more.
	return s.commitLocked(ctx, img, commitOptions{tags: tags})
}

// importLayer stores the rootfs tarball r (gzip-compressed or plain) as a
// layer in one pass over it: its bytes are hashed (the blob digest) and
// copied to the blob, or for a plain tar gzipped into it (beside the
// unpacking, in a goroutine), while the tar stream is hashed (the diff ID)
// and unpacked. A 173 MB Debian image was read three times and gunzipped
// twice before. The layer is made in a temp directory and renamed into
// place; the caller holds the gc lock.
func (s *Store) importLayer(ctx context.Context, r io.Reader, size int64, id string, progress ProgressFunc) (*layerInfo, error) {
	tmp, err := os.MkdirTemp(s.path("tmp"), "layer-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	blobFile, err := os.Create(filepath.Join(tmp, "blob"))
	if err != nil {
		return nil, err
	}
	defer blobFile.Close()
	bw := bufio.NewWriterSize(blobFile, 1<<20)
	blobHash := sha256.New()
	blob := &countWriter{w: io.MultiWriter(bw, blobHash)}

	in := bufio.NewReaderSize(&countingReader{r: r, total: size, id: id, status: StatusLoadingLayer, progress: progress}, 1<<20)
	diffHash := sha256.New()
	var tarStream io.Reader
	var finish func() error // reads the rest and completes the blob
	if magic, _ := in.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		tee := io.TeeReader(in, blob)
		// klauspost's gunzip takes 30% less CPU than the standard
		// library's, and decompresses ahead on a goroutine of its own.
		zr, err := pgzip.NewReader(tee)
		if err != nil {
			return nil, err
		}
		defer zr.Close() // stops its goroutine
		tarStream = io.TeeReader(zr, diffHash)
		finish = func() error {
			// The tar may end before the gzip stream, and that before the
			// file (padding); hash all of each.
			if _, err := io.Copy(io.Discard, tarStream); err != nil {
				return err
			}
			if err := zr.Close(); err != nil {
				return err
			}
			_, err := io.Copy(io.Discard, tee)
			return err
		}
	} else {
		gz := newGzipPipe(blob)
		defer gz.close(errors.New("import abandoned"))
		tarStream = io.TeeReader(in, io.MultiWriter(diffHash, gz))
		finish = func() error {
			if _, err := io.Copy(io.Discard, tarStream); err != nil {
				return err
			}
			return gz.close(nil)
		}
	}
	diff := filepath.Join(tmp, "diff")
	if err := os.Mkdir(diff, 0o755); err != nil {
		return nil, err
	}
	st, err := unpack.Apply(ctx, diff, tarStream)
	if err != nil {
		return nil, err
	}
	if err := finish(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := blobFile.Close(); err != nil {
		return nil, err
	}
	li := &layerInfo{DiffID: sumOf(diffHash), Digest: sumOf(blobHash), MediaType: string(types.DockerLayer), Size: blob.n, Unpacked: st.Bytes}

	unlock, err := s.lock("layer-"+hexOf(li.DiffID), true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !s.hasLayer(li.DiffID) {
		return li, s.placeLayer(tmp, blobFile.Name(), *li)
	}
	// The same content is stored already, perhaps from another blob: keep
	// this one too, as the manifest will name it.
	if !s.hasBlob(li.Digest) {
		if err := os.Rename(blobFile.Name(), s.blobPath(li.Digest)); err != nil {
			return nil, err
		}
	}
	return li, nil
}

// importedLayer is the layer importLayer stored, described by what it
// computed, so that building the manifest and config reads nothing.
type importedLayer struct {
	s  *Store
	li *layerInfo
}

func (l *importedLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.li.Digest) }
func (l *importedLayer) DiffID() (v1.Hash, error) { return v1.NewHash(l.li.DiffID) }
func (l *importedLayer) Size() (int64, error)     { return l.li.Size, nil }
func (l *importedLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.li.MediaType), nil
}
func (l *importedLayer) Compressed() (io.ReadCloser, error) {
	return os.Open(l.s.blobPath(l.li.Digest))
}

// gzipPipe gzips what is written to it into w in a goroutine, so that a
// plain tar is compressed on one core while it is unpacked on another. The
// level is gzip.BestSpeed, as go-containerregistry's for a plain tarball.
type gzipPipe struct {
	pw     *io.PipeWriter
	done   chan error
	closed bool
	err    error
}

func newGzipPipe(w io.Writer) *gzipPipe {
	pr, pw := io.Pipe()
	g := &gzipPipe{pw: pw, done: make(chan error, 1)}
	go func() {
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level: no error
		_, err := io.Copy(zw, pr)
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		// A failed write fails the next Write of the pipe, and so the pass.
		pr.CloseWithError(err)
		g.done <- err
	}()
	return g
}

func (g *gzipPipe) Write(p []byte) (int, error) { return g.pw.Write(p) }

// close ends the input (cause nil) or abandons it, and waits for the
// goroutine; it returns the compression's error and may be called again.
func (g *gzipPipe) close(cause error) error {
	if !g.closed {
		g.closed = true
		g.pw.CloseWithError(cause)
		g.err = <-g.done
	}
	return g.err
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
