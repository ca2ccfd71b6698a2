package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/internal/tarcp"
)

// CopyStat describes a path inside a container, for cp to decide where a
// copy lands.
type CopyStat struct {
	Exists bool   `json:"exists"`
	Dir    bool   `json:"dir"`
	Name   string `json:"name"`
}

// resolvePath turns a path inside the container into a host path, as
// the container would resolve it: component by component, each symlink
// replaced by its target (absolute ones from the container's /), each
// prefix mapped to the mount that holds it (a volume, a bind) or the
// rootfs. Nothing can lead outside: ".." stops at the container's /, and
// every host path is a mount's source or the rootfs joined with a clean
// path whose components were checked. The last element is followed only
// with followLast (cp copies a symlink as a symlink unless -L).
//
// A process could swap a checked directory for a symlink before the copy
// uses it: the copy runs with the container frozen (see freeze).
func (c *container) resolvePath(p string, followLast bool) (string, error) {
	c.mu.Lock()
	spec := c.rec.Spec
	c.mu.Unlock()
	todo := splitPath(p)
	cur := "/"
	links := 0
	for len(todo) > 0 {
		part := todo[0]
		todo = todo[1:]
		next := path.Join(cur, part)
		if len(todo) == 0 && !followLast {
			cur = next
			break
		}
		host, err := hostPath(spec, next)
		if err != nil {
			return "", err
		}
		fi, err := os.Lstat(host)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next // a missing element is created later, or reported
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		todo = append(splitPath(target), todo...)
	}
	return hostPath(spec, cur)
}

// freeze pauses a running container for the length of a copy, as docker
// does since the symlink race of CVE-2018-15664: a process in it cannot
// swap a checked directory for a symlink before the copy uses it. It
// returns what thaws it (nothing when it was not running or was paused).
func (c *container) freeze() (thaw func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctr == nil {
		return func() {}
	}
	if st, err := c.ctr.State(); err != nil || st.Status != runtime.StatusRunning {
		return func() {}
	}
	resume, err := c.ctr.Freeze()
	if err != nil {
		c.s.logf("container %s: pausing for a copy: %v", c.rec.Name, err)
		return func() {}
	}
	return func() {
		if err := resume(); err != nil {
			c.s.logf("container %s: resuming after a copy: %v", c.rec.Name, err)
		}
	}
}

// splitPath cuts a path into its elements, "." dropped.
func splitPath(p string) []string {
	var out []string
	for _, e := range strings.Split(p, "/") {
		if e != "" && e != "." {
			out = append(out, e)
		}
	}
	return out
}

// hostPath maps a clean, absolute container path whose elements are no
// symlinks to the host: under the mount with the longest destination that
// holds it, else under the rootfs.
func hostPath(spec runtime.Spec, p string) (string, error) {
	root, rest, best := spec.Rootfs, p, ""
	for _, m := range spec.Mounts {
		d := path.Clean(m.Destination)
		if (p == d || strings.HasPrefix(p, d+"/")) && len(d) > len(best) {
			best, root, rest = d, m.Source, strings.TrimPrefix(p, d)
		}
	}
	if best != "" {
		if fi, err := os.Stat(root); err == nil && !fi.IsDir() {
			if rest != "" {
				return "", fmt.Errorf("%s: not a directory", best)
			}
			return root, nil // a file bind mounted (/etc/hosts)
		}
	}
	return filepath.Join(root, filepath.FromSlash(path.Clean("/"+rest))), nil
}

func (s *Supervisor) copyTarget(w http.ResponseWriter, q url.Values) (*container, string, bool) {
	c := s.byID(q.Get("container"))
	if c == nil {
		http.Error(w, fmt.Sprintf("no container %s", q.Get("container")), http.StatusNotFound)
		return nil, "", false
	}
	p, err := c.resolvePath(q.Get("path"), false)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, "", false
	}
	return c, p, true
}

// serveCopyStat answers GET /cp/stat?container=ID&path=P.
func (s *Supervisor) serveCopyStat(w http.ResponseWriter, r *http.Request) {
	c, _, ok := s.copyTarget(w, r.URL.Query())
	if !ok {
		return
	}
	st := CopyStat{Name: path.Base(path.Clean("/" + r.URL.Query().Get("path")))}
	// A link to a directory is a directory to copy into, resolved inside
	// the container (never with the host's view of an absolute link).
	if t, err := c.resolvePath(r.URL.Query().Get("path"), true); err == nil {
		if fi, err := os.Lstat(t); err == nil {
			st.Exists, st.Dir = true, fi.IsDir()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// serveCopyFrom answers POST /cp/from?container=ID&path=P[&follow=1] with
// a tar of P, its entries under P's base name.
func (s *Supervisor) serveCopyFrom(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, _, ok := s.copyTarget(w, q)
	if !ok {
		return
	}
	thaw := c.freeze()
	defer thaw()
	_, p, ok := s.copyTarget(w, q) // resolved again, frozen
	if !ok {
		return
	}
	if q.Get("follow") == "1" {
		var err error
		if p, err = c.resolvePath(q.Get("path"), true); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	if _, err := os.Lstat(p); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, fs.ErrNotExist) {
			code = http.StatusNotFound
			err = fmt.Errorf("could not find the file %s in container", q.Get("path"))
		}
		http.Error(w, err.Error(), code)
		return
	}
	name := path.Base(path.Clean("/" + q.Get("path")))
	if name == "/" {
		name = "."
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := tarcp.Write(w, p, name, false); err != nil {
		s.logf("cp from %s: %v", q.Get("path"), err)
		// The client sees a truncated archive.
		panic(http.ErrAbortHandler)
	}
}

// serveCopyTo answers POST /cp/to?container=ID&path=DIR[&from=A&to=B][&archive=1]:
// the tar in the body is unpacked under the directory DIR.
func (s *Supervisor) serveCopyTo(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, _, ok := s.copyTarget(w, q)
	if !ok {
		return
	}
	thaw := c.freeze()
	defer thaw()
	dir, err := c.resolvePath(q.Get("path"), true)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		http.Error(w, fmt.Sprintf("destination %q must be a directory", q.Get("path")), http.StatusBadRequest)
		return
	}
	// Without -a the files belong to root, as with docker cp.
	opts := tarcp.Options{From: q.Get("from"), To: q.Get("to"), KeepOwner: q.Get("archive") == "1"}
	// Each directory of the archive resolves as the container would see
	// it (a symlink to a volume leads into the volume).
	base := path.Clean("/" + q.Get("path"))
	opts.Resolve = func(d string) (string, error) {
		return c.resolvePath(path.Join(base, d), true)
	}
	if err := tarcp.Extract(r.Body, dir, opts); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// CopyStat describes path in the container.
func (c *Client) CopyStat(ctx context.Context, id, p string) (CopyStat, error) {
	var st CopyStat
	resp, err := c.do(ctx, "GET", "/cp/stat?"+url.Values{"container": {id}, "path": {p}}.Encode(), nil)
	if err != nil {
		return st, c.connErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, respError(resp)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// CopyFrom returns a tar of path in the container; the caller closes it.
func (c *Client) CopyFrom(ctx context.Context, id, p string, follow bool) (io.ReadCloser, error) {
	q := url.Values{"container": {id}, "path": {p}}
	if follow {
		q.Set("follow", "1")
	}
	resp, err := c.do(ctx, "POST", "/cp/from?"+q.Encode(), nil)
	if err != nil {
		return nil, c.connErr(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, respError(resp)
	}
	return resp.Body, nil
}

// CopyTo unpacks the tar read from r under the directory dir of the
// container, renaming a leading element from to to; archive keeps the
// archive's owners.
func (c *Client) CopyTo(ctx context.Context, id, dir, from, to string, archive bool, r io.Reader) error {
	q := url.Values{"container": {id}, "path": {dir}, "from": {from}, "to": {to}}
	if archive {
		q.Set("archive", "1")
	}
	req, err := http.NewRequestWithContext(ctx, "POST", "http://berth/cp/to?"+q.Encode(), r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.http.Do(req)
	if err != nil {
		return c.connErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return respError(resp)
	}
	return nil
}

func respError(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return errors.New(strings.TrimSpace(string(msg)))
}
