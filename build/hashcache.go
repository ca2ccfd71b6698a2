package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// hashCache remembers the content hash of the context's files by what
// stat says of them (inode, size, mtime and ctime), so that a rebuild
// reads only files that changed: a write changes ctime, even one that puts
// mtime back. It is one JSON file per context directory under the
// builder's root, rewritten after a build that hashed something new.
type hashCache struct {
	mu      sync.Mutex
	path    string
	entries map[string]hashEntry
	dirty   bool
}

type hashEntry struct {
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime"`
	Ctime int64  `json:"ctime"`
	Sum   string `json:"sum"`
}

func loadHashCache(dir, contextDir string) *hashCache {
	sum := sha256.Sum256([]byte(contextDir))
	c := &hashCache{path: filepath.Join(dir, hex.EncodeToString(sum[:16])+".json"), entries: map[string]hashEntry{}}
	if data, err := os.ReadFile(c.path); err == nil {
		_ = json.Unmarshal(data, &c.entries)
	}
	return c
}

// sum returns the sha256 of the regular file at p, from the cache when
// its stat still matches.
func (c *hashCache) sum(p string, st *syscall.Stat_t) (string, error) {
	key := hashEntry{Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
	if c != nil {
		c.mu.Lock()
		e, ok := c.entries[p]
		c.mu.Unlock()
		if ok && e.Ino == key.Ino && e.Size == key.Size && e.Mtime == key.Mtime && e.Ctime == key.Ctime {
			return e.Sum, nil
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	key.Sum = hex.EncodeToString(h.Sum(nil))
	if c != nil {
		c.mu.Lock()
		c.entries[p] = key
		c.dirty = true
		c.mu.Unlock()
	}
	return key.Sum, nil
}

// save writes the cache back when it learnt something.
func (c *hashCache) save() error {
	if c == nil || !c.dirty {
		return nil
	}
	data, err := json.Marshal(c.entries)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	tmp := c.path + ".tmp-" + randomHex(8)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.path)
}
