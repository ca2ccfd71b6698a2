package build

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthrun/berth/internal/atomicfile"
)

// isURL reports whether an ADD source is remote rather than a context path.
func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || isGitSource(s)
}

// isGitSource reports whether an ADD source names a git repository, as
// BuildKit reads them: git@host:…, git:// or ssh:// URLs, and http(s)
// URLs whose path ends in .git (a #ref may follow).
func isGitSource(s string) bool {
	if strings.HasPrefix(s, "git@") || strings.HasPrefix(s, "git://") || strings.HasPrefix(s, "ssh://") {
		return true
	}
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && strings.HasSuffix(u.Path, ".git")
}

// download is a URL's content as the builder keeps it: a file named as
// ADD will name it, with BuildKit's mode (0600) and modification time
// (Last-Modified, else the epoch), in a directory of its own.
type download struct {
	dir    string
	name   string
	digest string
}

// urlMeta is what is kept beside a download to revalidate it.
type urlMeta struct {
	URL          string `json:"url"`
	Name         string `json:"name"`
	Digest       string `json:"digest"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

func (b *Builder) urlsDir() string { return filepath.Join(filepath.Dir(b.opts.CacheDir), "urls") }

// fetch brings a URL's content into the builder's URL cache. A kept copy
// whose digest is the expected checksum is used without asking the
// server; otherwise the request carries the kept ETag and Last-Modified,
// and a 304 keeps the copy. A checksum that does not match fails the step.
func (b *Builder) fetch(ctx context.Context, rawURL, checksum string) (*download, error) {
	if checksum != "" && !strings.HasPrefix(checksum, "sha256:") {
		return nil, fmt.Errorf("invalid checksum %q: only sha256:<hex> is supported", checksum)
	}
	sum := sha256.Sum256([]byte(rawURL))
	dir := filepath.Join(b.urlsDir(), fmt.Sprintf("%x", sum[:16]))
	metaPath := filepath.Join(dir, "meta.json")
	var kept *urlMeta
	if data, err := os.ReadFile(metaPath); err == nil {
		var m urlMeta
		if json.Unmarshal(data, &m) == nil && m.URL == rawURL {
			if _, err := os.Stat(filepath.Join(contentDir(dir, m.Digest), m.Name)); err == nil {
				kept = &m
			}
		}
	}
	if kept != nil && checksum != "" && kept.Digest == checksum {
		return &download{dir: contentDir(dir, kept.Digest), name: kept.Name, digest: kept.Digest}, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	if kept != nil {
		if kept.ETag != "" {
			req.Header.Set("If-None-Match", kept.ETag)
		}
		if kept.LastModified != "" {
			req.Header.Set("If-Modified-Since", kept.LastModified)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	var d *download
	switch {
	case resp.StatusCode == http.StatusNotModified && kept != nil:
		d = &download{dir: contentDir(dir, kept.Digest), name: kept.Name, digest: kept.Digest}
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("fetch %s: %s", rawURL, resp.Status)
	default:
		if d, err = b.save(dir, rawURL, resp); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", rawURL, err)
		}
	}
	if checksum != "" && d.digest != checksum {
		return nil, fmt.Errorf("digest mismatch for %s: %s (expected: %s)", rawURL, d.digest, checksum)
	}
	return d, nil
}

// save writes a 200 response into dir: the content into a directory
// named by its digest, which never changes once there (a build still
// copying an older version keeps it whole), then the metadata.
func (b *Builder) save(dir, rawURL string, resp *http.Response) (*download, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, ".new-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	name := urlFileName(rawURL)
	p := filepath.Join(tmp, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	mtime := time.Unix(0, 0)
	lastMod := resp.Header.Get("Last-Modified")
	if t, err := http.ParseTime(lastMod); err == nil {
		mtime = t
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		return nil, err
	}
	m := urlMeta{URL: rawURL, Name: name, Digest: fmt.Sprintf("sha256:%x", h.Sum(nil)), ETag: resp.Header.Get("ETag"), LastModified: lastMod}
	content := contentDir(dir, m.Digest)
	if err := os.Rename(tmp, content); err != nil {
		// Another build stored the same content first: the same bytes,
		// but its file's time is this response's.
		if _, serr := os.Stat(filepath.Join(content, name)); serr != nil {
			return nil, err
		}
		if err := os.Chtimes(filepath.Join(content, name), mtime, mtime); err != nil {
			return nil, err
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "meta.json"), raw, 0o600); err != nil {
		return nil, err
	}
	return &download{dir: content, name: name, digest: m.Digest}, nil
}

// contentDir is where a URL's content of that digest is kept.
func contentDir(dir, digest string) string {
	return filepath.Join(dir, strings.TrimPrefix(digest, "sha256:"))
}

// urlFileName is the name ADD gives a download when its destination is a
// directory: the URL path's last element, else "__unnamed__", as
// BuildKit's Dockerfile frontend names it (not Content-Disposition).
func urlFileName(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		if n := path.Base(u.Path); n != "." && n != "/" {
			return n
		}
	}
	return "__unnamed__"
}
