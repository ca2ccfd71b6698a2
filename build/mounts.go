package build

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/engine/runtime"
)

// runMounts are a RUN's --mount flags made ready: bind mounts and tmpfs
// for the runtime, what they add to the step's cache key, and what to undo
// once the step is over.
type runMounts struct {
	binds   []runtime.Mount
	tmpfs   map[string]string
	env     []string // secrets exposed as variables
	sshSock string   // the first ssh mount's socket, for SSH_AUTH_SOCK
	targets []string // container paths the mounts land on
	extra   []string
	release []func()
}

func (m *runMounts) close() {
	for i := len(m.release) - 1; i >= 0; i-- {
		m.release[i]()
	}
	m.release = nil
}

// prepareMounts resolves RUN --mount: type=cache (a directory under the
// builder's root kept across builds, keyed by id), type=bind (read-only
// from the context, a stage or an image; rw writes go to a throwaway
// overlay), type=tmpfs, and type=secret (a file of compose's
// build.secrets). Cache and tmpfs contents never enter the cache key; a
// bind's source does, as its content shapes the result.
func (b *Builder) prepareMounts(ctx context.Context, stageIdx int, workdir string, list []*instructions.Mount) (m *runMounts, err error) {
	m = &runMounts{tmpfs: map[string]string{}}
	nssh := 0
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	for _, mt := range list {
		target := mt.Target
		if target != "" && !path.IsAbs(target) {
			target = path.Join(orRoot(workdir), target)
		}
		switch mt.Type {
		case instructions.MountTypeCache:
			if target == "" {
				return m, errors.New("--mount=type=cache needs a target")
			}
			if err := b.cacheMount(m, mt, target); err != nil {
				return m, err
			}
		case instructions.MountTypeTmpfs:
			if target == "" {
				return m, errors.New("--mount=type=tmpfs needs a target")
			}
			opts := "mode=1777"
			if mt.SizeLimit > 0 {
				opts += fmt.Sprintf(",size=%d", mt.SizeLimit)
			}
			m.tmpfs[target] = opts
		case instructions.MountTypeBind:
			if target == "" {
				return m, errors.New("--mount=type=bind needs a target")
			}
			if err := b.bindMount(ctx, m, mt, stageIdx, target); err != nil {
				return m, err
			}
		case instructions.MountTypeSecret:
			if err := b.secretMount(m, mt, target); err != nil {
				return m, err
			}
			continue
		case instructions.MountTypeSSH:
			if err := b.sshMount(m, mt, target, nssh); err != nil {
				return m, err
			}
			nssh++
			continue
		default:
			return m, fmt.Errorf("--mount=type=%s is not supported", mt.Type)
		}
		m.targets = append(m.targets, target)
	}
	return m, nil
}

func (b *Builder) cacheMount(m *runMounts, mt *instructions.Mount, target string) error {
	id := mt.CacheID
	if id == "" {
		id = target
	}
	sum := sha256.Sum256([]byte(id))
	dir := filepath.Join(b.mountsDir(), fmt.Sprintf("%x", sum[:16]))
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return err
		}
		tmp, err := os.MkdirTemp(filepath.Dir(dir), ".new-")
		if err != nil {
			return err
		}
		if err := ownAsMount(tmp, mt, 0o755); err != nil {
			return err
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp) // another build made it first
		}
	}
	if mt.CacheSharing != instructions.MountSharingShared && mt.CacheSharing != "" {
		// locked, and private (one user at a time rather than a copy each).
		f, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return err
		}
		m.release = append(m.release, func() { f.Close() })
	}
	m.binds = append(m.binds, runtime.Mount{Source: dir, Destination: target, ReadOnly: mt.ReadOnly})
	return nil
}

func (b *Builder) bindMount(ctx context.Context, m *runMounts, mt *instructions.Mount, stageIdx int, target string) error {
	src := b.ctx
	from := mt.From
	switch {
	case from == "":
		m.extra = append(m.extra, "bind context")
	case b.namedDir(from) != "":
		src = &source{root: b.namedDir(from), context: true}
		m.extra = append(m.extra, "bind context "+from)
	default:
		var layers []image.Layer
		if j, ok := b.df.stageIndex(from, stageIdx); ok && !b.namedImage(&from) {
			st, err := b.stage(ctx, j)
			if err != nil {
				return err
			}
			layers = st.Layers
			m.extra = append(m.extra, "bind from "+st.Key)
		} else {
			b.namedImage(&from)
			rec, err := b.image(ctx, from)
			if err != nil {
				return err
			}
			layers = rec.Layers
			m.extra = append(m.extra, "bind from image:"+rec.ID)
		}
		id := "build-" + randomHex(12)
		diffs := make([]string, len(layers))
		for i, l := range layers {
			diffs[i] = l.DiffID
		}
		root, err := b.opts.Store.MountLayers(ctx, id, diffs)
		m.release = append(m.release, func() { _ = b.opts.Store.RemoveRootfs(id) })
		if err != nil {
			return err
		}
		src = &source{root: root}
	}
	it, err := src.lookup(mustClean(mt.Source))
	if err != nil {
		return err
	}
	if src.context {
		d, err := src.digest([]item{it})
		if err != nil {
			return err
		}
		m.extra = append(m.extra, "bind "+it.rel+" "+d)
	}
	host := it.abs
	if !mt.ReadOnly && it.info.IsDir() {
		// Writes to a rw bind are thrown away, as in BuildKit: an overlay
		// over the source takes them.
		dir, err := os.MkdirTemp(b.tmpDir(), "bind-")
		if err != nil {
			return err
		}
		m.release = append(m.release, func() { os.RemoveAll(dir) })
		for _, d := range []string{"upper", "work", "merged"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		merged := filepath.Join(dir, "merged")
		data := "lowerdir=" + host + ",upperdir=" + filepath.Join(dir, "upper") + ",workdir=" + filepath.Join(dir, "work")
		if err := unix.Mount("overlay", merged, "overlay", 0, data); err != nil {
			return fmt.Errorf("bind mount %s: %w", mt.Source, err)
		}
		m.release = append(m.release, func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
		host = merged
	}
	m.binds = append(m.binds, runtime.Mount{Source: host, Destination: target, ReadOnly: mt.ReadOnly})
	return nil
}

func (b *Builder) secretMount(m *runMounts, mt *instructions.Mount, target string) error {
	id := mt.CacheID
	if id == "" && target != "" {
		id = path.Base(target)
	}
	sec, ok := b.opts.Secrets[id]
	if !ok {
		if mt.Required {
			return fmt.Errorf("secret %s: not provided (compose build.secrets, or build --secret id=%s,...)", id, id)
		}
		return nil
	}
	data := sec.Value
	if sec.File != "" {
		var err error
		if data, err = os.ReadFile(sec.File); err != nil {
			return fmt.Errorf("secret %s: %w", id, err)
		}
	}
	if mt.Env != nil {
		name := *mt.Env
		if name == "" {
			name = id
		}
		m.env = append(m.env, name+"="+strings.TrimRight(string(data), "\n"))
		if mt.Target == "" {
			return nil
		}
	}
	if target == "" {
		target = "/run/secrets/" + id
	}
	file := sec.File
	if file == "" || mt.Mode != nil || mt.UID != nil || mt.GID != nil {
		// A value, or a file whose owner or mode the mount sets: a copy
		// of berth's, gone with the step (BuildKit's 0400 root by default).
		dir, err := os.MkdirTemp(b.secretsDir(), "secret-")
		if err != nil {
			return err
		}
		m.release = append(m.release, func() { os.RemoveAll(dir) })
		file = filepath.Join(dir, "secret")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			return err
		}
		if err := ownAsMount(file, mt, 0o400); err != nil {
			return err
		}
	}
	m.binds = append(m.binds, runtime.Mount{Source: file, Destination: target, ReadOnly: true})
	m.targets = append(m.targets, target)
	return nil
}

// ownAsMount gives path the owner and mode a RUN --mount asks for (uid,
// gid, mode options), root and mode by default.
func ownAsMount(path string, mt *instructions.Mount, mode uint64) error {
	uid, gid := 0, 0
	if mt.Mode != nil {
		mode = *mt.Mode
	}
	if mt.UID != nil {
		uid = int(*mt.UID)
	}
	if mt.GID != nil {
		gid = int(*mt.GID)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return err
	}
	return os.Chmod(path, unixMode(mode))
}

// secretsDir is where a step's secret copies live: in memory (/dev/shm)
// where the host has it as a tmpfs, so that no secret reaches a disk, else
// the store's tmp directory.
func (b *Builder) secretsDir() string {
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC {
		return "/dev/shm"
	}
	return b.tmpDir()
}

func (b *Builder) mountsDir() string {
	return filepath.Join(filepath.Dir(b.opts.CacheDir), "mounts")
}

func mustClean(p string) string {
	c := path.Clean("/" + p)[1:]
	if c == "" {
		return "."
	}
	return c
}

// missingPaths lists the container paths (and their parents) that rootfs
// lacks, parents first: the runtime creates them as mount points, and they
// are no part of the step's diff.
func missingPaths(rootfs string, targets []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range targets {
		parts := strings.Split(strings.Trim(path.Clean(t), "/"), "/")
		for i := range parts {
			p := strings.Join(parts[:i+1], "/")
			if p == "" || seen[p] {
				continue
			}
			if _, err := os.Lstat(filepath.Join(rootfs, p)); err != nil {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// dirMeta is what makes a directory differ, besides its content and times.
type dirMeta struct {
	mode     os.FileMode
	uid, gid uint32
}

// stubParents records the existing directories that hold stubs: creating
// a mount point in one copies it up, a change that is no part of the step.
func stubParents(rootfs string, stubs []string) map[string]dirMeta {
	out := map[string]dirMeta{}
	for _, s := range stubs {
		for d := path.Dir(path.Clean(s)); d != "/" && d != "."; d = path.Dir(d) {
			rel := strings.TrimPrefix(d, "/")
			if _, ok := out[rel]; ok {
				continue
			}
			if fi, err := os.Lstat(filepath.Join(rootfs, rel)); err == nil && fi.IsDir() {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					out[rel] = dirMeta{mode: fi.Mode(), uid: st.Uid, gid: st.Gid}
				}
			}
		}
	}
	return out
}

// dropCopiedUp removes from upper the directories of parents that are
// there only because a mount point was made in them: empty, not opaque,
// with the mode and owner they had below.
func dropCopiedUp(upper string, parents map[string]dirMeta) {
	rels := make([]string, 0, len(parents))
	for rel := range parents {
		rels = append(rels, rel)
	}
	sort.Slice(rels, func(i, j int) bool { return len(rels[i]) > len(rels[j]) }) // deepest first
	for _, rel := range rels {
		p := filepath.Join(upper, rel)
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		want := parents[rel]
		if !ok || fi.Mode() != want.mode || st.Uid != want.uid || st.Gid != want.gid {
			continue
		}
		if image.IsOpaque(p) {
			continue
		}
		_ = os.Remove(p) // fails, and keeps it, when not empty
	}
}
