package build

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// source is a tree COPY and ADD read from: the build context (where
// .dockerignore applies and symlinks must stay inside), or the root of a
// stage or image (where absolute symlinks resolve inside the root, as they
// would in a container).
type source struct {
	root    string
	context bool
	ignore  *patternmatcher.PatternMatcher // context only; nil: nothing ignored
	hashes  *hashCache                     // context only; nil: hash every file
}

// loadIgnore reads <dockerfile>.dockerignore beside the Dockerfile when it
// exists, else .dockerignore at the context's root, as BuildKit does.
func loadIgnore(contextDir, dockerfilePath string) (*patternmatcher.PatternMatcher, error) {
	candidates := []string{filepath.Join(contextDir, ".dockerignore")}
	if dockerfilePath != "" {
		candidates = append([]string{dockerfilePath + ".dockerignore"}, candidates...)
	}
	for _, c := range candidates {
		f, err := os.Open(c)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		patterns, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		return patternmatcher.New(patterns)
	}
	return nil, nil
}

// ignored reports whether the context path rel (slash-separated, relative)
// is excluded by .dockerignore.
func (s *source) ignored(rel string) bool {
	if s.ignore == nil || rel == "." {
		return false
	}
	ok, err := s.ignore.MatchesOrParentMatches(rel)
	return err == nil && ok
}

// item is one resolved COPY source.
type item struct {
	rel  string // slash-separated, relative to the source root ("." for the root)
	abs  string // host path, symlinks of the path resolved inside the root
	info fs.FileInfo
	// exclude leaves out paths below the item (COPY --exclude).
	exclude *patternmatcher.PatternMatcher
	// dest and pivot are for COPY --parents: the item's path below the
	// destination, and the host directory that path is relative to.
	dest, pivot string
	// keepArchive: an archive ADD copies as it is (a URL's, without
	// --unpack=true).
	keepArchive bool
	// walked, when set, keeps what a walk of the item found for the next
	// walk of it: a context COPY walks its sources for its key, then again
	// to copy them when it missed the cache.
	walked *walkMemo
}

// walkMemo is one walk's entries, with their lstat, in the batches the
// walk statted them in (kept whole: copying each entry into one growing
// slice was a twentieth of a no-change rebuild's walk).
type walkMemo struct {
	batches [][]walked
	n       int
	done    bool
}

// walkMemoMax bounds the entries a walkMemo keeps (about 300 bytes each);
// a larger tree is walked again.
const walkMemoMax = 100_000

// cleanSource turns a COPY source into a path relative to the source root,
// refusing one that climbs out of the context.
func cleanSource(src string, context bool) (string, error) {
	rel := path.Clean(filepath.ToSlash(src))
	if path.IsAbs(rel) {
		rel = strings.TrimPrefix(rel, "/")
		if rel == "" {
			rel = "."
		}
	} else if context && (rel == ".." || strings.HasPrefix(rel, "../")) {
		return "", fmt.Errorf("source %q is outside the build context", src)
	}
	rel = path.Clean("/" + rel)[1:]
	if rel == "" {
		rel = "."
	}
	return rel, nil
}

func hasWildcard(s string) bool { return strings.ContainsAny(s, "*?[") }

// resolve finds the files a COPY source names: one path, or every path a
// wildcard matches.
func (s *source) resolve(src string) ([]item, error) {
	rel, err := cleanSource(src, s.context)
	if err != nil {
		return nil, err
	}
	if !hasWildcard(rel) {
		it, err := s.lookup(rel)
		if err != nil {
			return nil, err
		}
		return []item{it}, nil
	}
	var out []item
	err = s.walkTaking(s.root, "", func(string) bool { return false }, func(r string) bool {
		ok, _ := path.Match(rel, r)
		return ok
	}, func(_ string, it item) { out = append(out, it) })
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no source files were specified: %q matches nothing", src)
	}
	return out, nil
}

// lookup resolves one source path. In the context, a symlink on the way
// (or the path itself) must point inside the context; in a stage or image
// it resolves as it would inside a container.
func (s *source) lookup(rel string) (item, error) {
	if s.context && s.ignored(rel) {
		return item{}, fmt.Errorf("source %q not found: it is excluded by .dockerignore", rel)
	}
	var abs string
	if s.context {
		p := filepath.Join(s.root, rel)
		real, err := filepath.EvalSymlinks(p)
		if errors.Is(err, os.ErrNotExist) {
			return item{}, fmt.Errorf("source %q not found in the build context", rel)
		}
		if err != nil {
			return item{}, err
		}
		root, err := filepath.EvalSymlinks(s.root)
		if err != nil {
			return item{}, err
		}
		if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
			return item{}, fmt.Errorf("source %q points outside the build context", rel)
		}
		abs = real
	} else {
		p, err := securejoin.SecureJoin(s.root, rel)
		if err != nil {
			return item{}, err
		}
		abs = p
	}
	fi, err := os.Stat(abs)
	if errors.Is(err, os.ErrNotExist) {
		return item{}, fmt.Errorf("source %q not found", rel)
	}
	if err != nil {
		return item{}, err
	}
	return item{rel: rel, abs: abs, info: fi}, nil
}

// walk calls fn for it and, for a directory, everything below it that
// .dockerignore keeps, in lexical order; sub is the path below it ("" for
// it). Symlinks below it are not followed.
//
// The entries' lstats, most of a walk's time, are made a batch at a time
// on two goroutines before fn sees the batch in order: a rebuild's walk of
// a 5000-file context otherwise kept one core busy and the other idle.
func (s *source) walk(it item, fn func(abs, sub string, fi fs.FileInfo) error) error {
	if !it.info.IsDir() {
		return fn(it.abs, "", it.info)
	}
	memo := it.walked
	if memo != nil && memo.done {
		for _, batch := range memo.batches {
			for _, w := range batch {
				if err := fn(w.abs, w.sub, w.fi); err != nil {
					return err
				}
			}
		}
		return nil
	}
	record := memo != nil
	if record {
		memo.batches, memo.n = nil, 0 // what a failed walk left
	}
	batch := make([]walked, 0, walkBatch)
	flush := func() error {
		if err := statAll(batch); err != nil {
			return err
		}
		if record && memo.n+len(batch) > walkMemoMax {
			record, memo.batches, memo.n = false, nil, 0
		}
		for _, w := range batch {
			if err := fn(w.abs, w.sub, w.fi); err != nil {
				return err
			}
		}
		if record {
			memo.batches = append(memo.batches, batch)
			memo.n += len(batch)
			batch = make([]walked, 0, walkBatch)
		} else {
			batch = batch[:0]
		}
		return nil
	}
	err := filepath.WalkDir(it.abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		sub := subPath(it.abs, p)
		if sub != "" && it.exclude != nil && excluded(it.exclude, sub) {
			if d.IsDir() && !it.exclude.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		if sub != "" && s.context && s.ignored(path.Join(it.rel, sub)) {
			// A pattern with "!" may still keep something below an
			// ignored directory; the matcher knows.
			if d.IsDir() && !s.ignore.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		batch = append(batch, walked{abs: p, sub: sub, d: d})
		if len(batch) == walkBatch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	if record {
		memo.done = true
	}
	return nil
}

// subPath is p's path below root, where WalkDir(root) found it ("" for
// root itself); a cut of the string, as filepath.Rel per entry was a
// tenth of a no-change rebuild's walk.
func subPath(root, p string) string {
	if p == root {
		return ""
	}
	if len(p) > len(root) && strings.HasPrefix(p, root) {
		if root[len(root)-1] == '/' {
			return p[len(root):]
		}
		if p[len(root)] == '/' {
			return p[len(root)+1:]
		}
	}
	sub, _ := filepath.Rel(root, p)
	if sub == "." {
		return ""
	}
	return filepath.ToSlash(sub)
}

// walkBatch is how many entries a walk stats before it hands them on.
const walkBatch = 512

type walked struct {
	abs, sub string
	d        fs.DirEntry
	fi       fs.FileInfo
}

// statAll fills the entries' fi, half of them on another goroutine.
func statAll(ws []walked) error {
	stat := func(ws []walked) error {
		var d dirStatter
		defer d.Close()
		for i := range ws {
			var fi fs.FileInfo
			var err error
			if ws[i].sub == "" {
				fi, err = ws[i].d.Info() // the walk's root: WalkDir's own lstat
			} else {
				fi, err = d.lstat(ws[i].abs)
			}
			if err != nil {
				return err
			}
			ws[i].fi = fi
		}
		return nil
	}
	if len(ws) < 64 {
		return stat(ws)
	}
	half := len(ws) / 2
	done := make(chan error, 1)
	go func() { done <- stat(ws[half:]) }()
	err := stat(ws[:half])
	if err2 := <-done; err == nil {
		err = err2
	}
	return err
}

// digest hashes what a COPY would take from these items: names, types,
// modes, owners, sizes, link targets and contents. It is the part of a
// COPY's cache key that stands for its sources. A file's line is built in
// one buffer (fmt per field cost a third of a no-change rebuild's walk).
func (s *source) digest(items []item) (string, error) {
	h := sha256.New()
	var line []byte
	for _, it := range items {
		fmt.Fprintf(h, "item %s\n", it.rel)
		err := s.walk(it, func(abs, sub string, fi fs.FileInfo) error {
			var uid, gid uint32
			st, ok := fi.Sys().(*syscall.Stat_t)
			if ok {
				uid, gid = st.Uid, st.Gid
			}
			line = strconv.AppendQuote(line[:0], sub)
			line = append(line, ' ')
			line = strconv.AppendUint(line, uint64(uint32(fi.Mode())), 8)
			line = append(line, ' ')
			line = strconv.AppendUint(line, uint64(uid), 10)
			line = append(line, ':')
			line = strconv.AppendUint(line, uint64(gid), 10)
			line = append(line, ' ')
			line = strconv.AppendInt(line, fi.Size(), 10)
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				t, err := os.Readlink(abs)
				if err != nil {
					return err
				}
				line = append(line, " -> "...)
				line = strconv.AppendQuote(line, t)
			case fi.Mode().IsRegular():
				if !ok {
					return fmt.Errorf("%s: no stat", abs)
				}
				sum, err := s.hashes.sum(abs, st)
				if err != nil {
					return err
				}
				line = append(line, ' ')
				line = append(line, sum...)
			}
			line = append(line, '\n')
			h.Write(line)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil)), nil
}

// walkTaking walks the tree at abs, which is dir below the source's root
// ("" for the root), and hands add each entry that take accepts (r is its
// path below abs), looked up as an item. A path the context's
// .dockerignore ignores, or that skip rejects, is passed over with
// everything below it; a directory taken is not entered.
func (s *source) walkTaking(abs, dir string, skip, take func(r string) bool, add func(r string, it item)) error {
	return filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(abs, p)
		r = filepath.ToSlash(r)
		if r == "." {
			return nil
		}
		full := path.Join(dir, r)
		if s.context && s.ignored(full) || skip(r) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !take(r) {
			return nil
		}
		it, err := s.lookup(full)
		if err != nil {
			return err
		}
		add(r, it)
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
}
