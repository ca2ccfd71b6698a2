package build

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFetch(t *testing.T) {
	body := "v1"
	var gets, notModified atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		etag := fmt.Sprintf(`"%x"`, sha256.Sum256([]byte(body)))
		if r.Header.Get("If-None-Match") == etag {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	dir := t.TempDir()
	b := &Builder{opts: Options{CacheDir: filepath.Join(dir, "cache")}}
	ctx := context.Background()
	u := srv.URL + "/files/app.txt"
	d, err := b.fetch(ctx, u, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d.dir, d.name)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if d.name != "app.txt" || fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)) {
		t.Errorf("download %s: mode %v, mtime %v", d.name, fi.Mode(), fi.ModTime())
	}
	v1 := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("v1")))
	if d.digest != v1 {
		t.Errorf("digest %s, want %s", d.digest, v1)
	}
	// Unchanged: revalidated with the ETag, kept.
	if d, err = b.fetch(ctx, u, ""); err != nil || d.digest != v1 || notModified.Load() != 1 {
		t.Errorf("refetch: %v, %v, %d not modified", d, err, notModified.Load())
	}
	// The expected checksum of the kept copy: no request at all.
	n := gets.Load()
	if _, err = b.fetch(ctx, u, v1); err != nil || gets.Load() != n {
		t.Errorf("fetch with the kept checksum: %v, %d requests", err, gets.Load()-n)
	}
	body = "v2"
	if _, err = b.fetch(ctx, u, "sha256:"+strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("content that is not the checksum's: %v", err)
	}
	if d, err = b.fetch(ctx, u, ""); err != nil || d.digest == v1 {
		t.Errorf("changed content: %v, %v", d, err)
	}
	if data, _ := os.ReadFile(filepath.Join(d.dir, d.name)); string(data) != "v2" {
		t.Errorf("content after a change: %q", data)
	}
	if _, err = b.fetch(ctx, srv.URL+"/x", "md5:abc"); err == nil {
		t.Error("a checksum that is not sha256 was accepted")
	}
}
