package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
)

// copySpec is a COPY or ADD with its flags expanded.
type copySpec struct {
	sd      instructions.SourcesAndDest
	from    string
	chown   string
	chmod   string
	extract bool // ADD: unpack local archives
	// parents keeps each source's path relative to the context root, or
	// to the "/./" pivot in it, below the destination (COPY --parents).
	parents bool
	// exclude leaves out what these patterns match below each source, and
	// wildcard matches they name (--exclude).
	exclude *patternmatcher.PatternMatcher
	// urls are ADD's remote sources, fetched before the step is keyed.
	urls       []*download
	unpackURLs bool
}

// newExclude compiles --exclude patterns; nil when there are none.
func newExclude(patterns []string, expand func(string) (string, error)) (*patternmatcher.PatternMatcher, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	var out []string
	for _, p := range patterns {
		p, err := expand(p)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	pm, err := patternmatcher.New(out)
	if err != nil {
		return nil, fmt.Errorf("invalid --exclude: %w", err)
	}
	return pm, nil
}

// excluded reports whether --exclude leaves out rel (a path below a
// source, or a wildcard match relative to the wildcard's directory).
func excluded(pm *patternmatcher.PatternMatcher, rel string) bool {
	if pm == nil || rel == "" || rel == "." {
		return false
	}
	ok, err := pm.MatchesOrParentMatches(rel)
	return err == nil && ok
}

// wildcardBase is the directory part of a wildcard source before its
// first wildcard element: matches are named relative to it for --exclude.
func wildcardBase(rel string) string {
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		if hasWildcard(p) {
			return strings.Join(parts[:i], "/")
		}
	}
	return path.Dir(rel)
}

// resolveSources resolves a COPY's sources in src, leaving out the
// wildcard matches --exclude names and marking every item so that its
// walk leaves out what --exclude names below it.
func resolveSources(src *source, patterns []string, exclude *patternmatcher.PatternMatcher) ([]item, error) {
	var items []item
	for _, s := range patterns {
		found, err := src.resolve(s)
		if err != nil {
			return nil, err
		}
		wild := false
		base := ""
		if rel, err := cleanSource(s, src.context); err == nil && hasWildcard(rel) {
			wild, base = true, wildcardBase(rel)
		}
		for _, it := range found {
			if wild && excluded(exclude, strings.TrimPrefix(strings.TrimPrefix(it.rel, base), "/")) {
				continue
			}
			it.exclude = exclude
			items = append(items, it)
		}
	}
	return items, nil
}

// resolveParents resolves COPY --parents sources: each source splits at
// "/./" into a root and a pattern (no pivot: the root is the source
// root), and every path below the root that the pattern names is copied
// to the same path below the destination. A source without wildcards
// must exist; a wildcard may match nothing, as in BuildKit.
func resolveParents(src *source, patterns []string, exclude *patternmatcher.PatternMatcher) ([]item, error) {
	var items []item
	for _, s := range patterns {
		if _, err := cleanSource(s, src.context); err != nil {
			return nil, err
		}
		rootPart, pattern, ok := strings.Cut(s, "/./")
		if !ok {
			rootPart, pattern = ".", s
		}
		root, err := cleanSource(rootPart, src.context)
		if err != nil {
			return nil, err
		}
		pattern = strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(pattern)), "/")
		if pattern == "" {
			pattern = "."
		}
		if !hasWildcard(pattern) {
			it, err := src.lookup(path.Join(root, pattern))
			if err != nil {
				return nil, err
			}
			if excluded(exclude, pattern) {
				continue
			}
			it.exclude, it.dest, it.pivot = exclude, pattern, filepath.Join(src.root, root)
			items = append(items, it)
			continue
		}
		pm, err := patternmatcher.New([]string{pattern})
		if err != nil {
			return nil, fmt.Errorf("invalid source %q: %w", s, err)
		}
		top, err := src.lookup(root)
		if err != nil {
			return nil, err
		}
		if !top.info.IsDir() {
			return nil, fmt.Errorf("source %q: %s is not a directory", s, root)
		}
		err = src.walkTaking(top.abs, root, func(r string) bool { return excluded(exclude, r) }, func(r string) bool {
			m, _ := pm.MatchesOrParentMatches(r)
			return m
		}, func(r string, it item) {
			it.exclude, it.dest, it.pivot = exclude, r, top.abs
			items = append(items, it)
		})
		if err != nil {
			return nil, err
		}
	}
	return items, nil
}

// copyParents copies items resolved by resolveParents, each at its own
// path below dest; directories missing on the way are made with the
// modes, owners and times of the source's.
func copyParents(rootfs string, src *source, items []item, dest string, o copyOpts) error {
	dest = path.Clean(dest)
	if err := mkdirs(rootfs, dest, o); err != nil {
		return err
	}
	for _, it := range items {
		var chain []string
		for d := path.Dir(it.dest); d != "." && d != "/"; d = path.Dir(d) {
			chain = append([]string{d}, chain...)
		}
		for _, d := range chain {
			target := path.Join(dest, d)
			if p, err := securejoin.SecureJoin(rootfs, target); err == nil {
				if _, err := os.Lstat(p); err == nil {
					continue
				}
			}
			abs := filepath.Join(it.pivot, filepath.FromSlash(d))
			fi, err := os.Stat(abs)
			if err != nil {
				return err
			}
			if err := copyOne(rootfs, abs, target, fi, o); err != nil {
				return err
			}
		}
		if err := copyItems(rootfs, src, []item{it}, path.Join(dest, it.dest), o, false); err != nil {
			return err
		}
	}
	return nil
}

// prepareAdd is ADD: a git source is refused; http(s) sources are fetched
// into the builder's URL cache now, so that their content digests key the
// step; local sources are those of COPY.
func (b *Builder) prepareAdd(ctx context.Context, st *state, stageIdx int, c *instructions.AddCommand, expand func(string) (string, error)) (prepared, error) {
	spec := copySpec{sd: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod, extract: c.Unpack == nil || *c.Unpack}
	var err error
	if spec.exclude, err = newExclude(c.ExcludePatterns, expand); err != nil {
		return prepared{}, err
	}
	var local []string
	for _, s := range c.SourcePaths {
		if isGitSource(s) {
			return prepared{}, fmt.Errorf("ADD of a git repository (%s) is not supported: clone it in a RUN, or into the build context", s)
		}
		if !isURL(s) {
			local = append(local, s)
		}
	}
	if c.Checksum != "" {
		if len(c.SourcePaths) != 1 || len(local) != 0 {
			return prepared{}, errors.New("--checksum needs a single http(s) source")
		}
	}
	var extra []string
	for _, s := range c.SourcePaths {
		if !isURL(s) {
			continue
		}
		d, err := b.fetch(ctx, s, c.Checksum)
		if err != nil {
			return prepared{}, err
		}
		spec.urls = append(spec.urls, d)
		extra = append(extra, "url "+s+" "+d.digest)
	}
	if len(spec.urls) > 0 {
		spec.sd.SourcePaths = local
		// A remote archive is unpacked only when --unpack=true asks.
		spec.unpackURLs = c.Unpack != nil && *c.Unpack
	}
	x, err := b.prepareCopy(ctx, st, stageIdx, spec)
	if err != nil {
		return x, err
	}
	x.extra = append(x.extra, extra...)
	return x, nil
}

// urlItems are the fetched files of an ADD as copy sources.
func urlItems(urls []*download, unpack bool) ([]item, error) {
	var items []item
	for _, d := range urls {
		abs := filepath.Join(d.dir, d.name)
		fi, err := os.Lstat(abs)
		if err != nil {
			return nil, err
		}
		items = append(items, item{rel: d.name, abs: abs, info: fi, keepArchive: !unpack})
	}
	return items, nil
}
