package build

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berthrun/berth/engine/image"
)

// state is a stage after some of its steps: the image config so far (with
// history and diff IDs) and the layers, plus the cache key that names it.
type state struct {
	Key    string        `json:"key"`
	Config v1.ConfigFile `json:"config"`
	Layers []image.Layer `json:"layers"`
	cmdSet bool          // CMD set in this stage (ENTRYPOINT then keeps it)
	scope  *vars         // ARGs in scope
}

func (s *state) diffIDs() []string {
	out := make([]string, len(s.Layers))
	for i, l := range s.Layers {
		out[i] = l.DiffID
	}
	return out
}

// stepKey names a step's result: its parent's key, the instruction as
// written (heredoc bodies included), the build args in scope, and anything
// else it reads (a COPY's source digest, a RUN's network).
func stepKey(parent, instruction string, args []string, extra ...string) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode(struct {
		Parent      string   `json:"parent"`
		Instruction string   `json:"instruction"`
		Args        []string `json:"args"`
		Extra       []string `json:"extra"`
	}{parent, instruction, args, extra})
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}

// cache is the step cache: one record per key under the builder's root,
// holding the resulting config and layers. The layers themselves live in
// the image store, pinned; a record whose layers were pruned anyway (by
// `image prune -a`) is a miss.
type cache struct {
	dir   string
	store *image.Store
}

type cacheRecord struct {
	Config v1.ConfigFile `json:"config"`
	Layers []image.Layer `json:"layers"`
}

func (c *cache) path(key string) string {
	return filepath.Join(c.dir, key[len("sha256:"):]+".json")
}

func (c *cache) get(key string) (*cacheRecord, bool) {
	data, err := os.ReadFile(c.path(key))
	if err != nil {
		return nil, false
	}
	var rec cacheRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, false
	}
	for _, l := range rec.Layers {
		if !c.store.HasLayer(l.DiffID) {
			return nil, false
		}
	}
	return &rec, true
}

// shape returns the diff ID of the layer last made by a step of shape key
// (a COPY from the context keyed without its sources), and the content
// hashes of the files it wrote, by target.
func (c *cache) shape(key string) (string, map[string]string, bool) {
	data, err := os.ReadFile(filepath.Join(c.dir, "shape-"+key[len("sha256:"):]))
	if err != nil {
		return "", nil, false
	}
	first, rest, _ := strings.Cut(string(data), "\n")
	if !strings.HasPrefix(first, "sha256:") {
		return "", nil, false
	}
	sums := map[string]string{}
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		if sum, target, ok := strings.Cut(line, "\t"); ok {
			sums[target] = sum
		}
	}
	return first, sums, true
}

// putShape records the layer a step of shape key made, with the content
// hashes of its files (a line each: sum, tab, target); failing to is no
// error (the next such step copies, or hashes, everything).
func (c *cache) putShape(key, diffID string, sums map[string]string) {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return
	}
	var b strings.Builder
	b.WriteString(diffID)
	b.WriteByte('\n')
	for target, sum := range sums {
		if strings.ContainsAny(target, "\t\n") {
			continue // such names are hashed every time
		}
		b.WriteString(sum)
		b.WriteByte('\t')
		b.WriteString(target)
		b.WriteByte('\n')
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-")
	if err != nil {
		return
	}
	_, err = tmp.WriteString(b.String())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(c.dir, "shape-"+key[len("sha256:"):]))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}

// put records a step's result and pins its layers in the store, so that
// collecting unused layers spares them until the cache is pruned.
func (c *cache) put(key string, rec *cacheRecord) error {
	if err := c.store.Pin(key[len("sha256:"):], rec.Layers); err != nil {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path(key))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// Prune deletes the build cache: every step record, the store's pins of
// their layers (and the layers no image uses), the RUN cache mounts and
// the files ADD fetched from URLs.
// It returns the bytes reclaimed and how many records went.
func Prune(store *image.Store, cacheDir string) (int64, int, error) {
	n := 0
	ents, err := os.ReadDir(cacheDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, 0, err
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(cacheDir, e.Name())); err == nil {
			n++
		}
	}
	reclaimed, err := store.PruneBuildCache()
	if err != nil {
		return reclaimed, n, err
	}
	for _, d := range []string{"mounts", "urls"} {
		dir := filepath.Join(filepath.Dir(cacheDir), d)
		reclaimed += du(dir)
		if err := os.RemoveAll(dir); err != nil {
			return reclaimed, n, err
		}
	}
	return reclaimed, n, nil
}

func du(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
