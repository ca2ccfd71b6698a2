package e2e

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// fileServer serves files over HTTP on loopback, counting requests and
// the conditional ones it answered 304.
type fileServer struct {
	mu          sync.Mutex
	files       map[string]string
	requests    int
	notModified int
	url         string
}

func startFileServer(t *testing.T, files map[string]string) *fileServer {
	t.Helper()
	fs := &fileServer{files: files}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: fs}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	fs.url = "http://" + ln.Addr().String()
	return fs
}

func (fs *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.requests++
	body, ok := fs.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	etag := fmt.Sprintf(`"%x"`, sha256.Sum256([]byte(body)))
	if r.Header.Get("If-None-Match") == etag {
		fs.notModified++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
	fmt.Fprint(w, body)
}

func (fs *fileServer) set(path, body string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.files[path] = body
}

func (fs *fileServer) counts() (int, int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.requests, fs.notModified
}

// TestBuildAddURL: ADD fetches http(s) sources in the CLI (from a server
// on loopback) with BuildKit's name, mode and time, verifies --checksum,
// does not unpack a remote archive, keys the step by the content (a
// rebuild revalidates with the ETag and stays cached; changed content
// reruns the step); a mismatching checksum and a git source are clear
// errors.
func TestBuildAddURL(t *testing.T) {
	tool := "#!/bin/sh\necho tool ran\n"
	srv := startFileServer(t, map[string]string{
		"/dl/tool.sh":     tool,
		"/dl/data.txt":    "data v1\n",
		"/dl/app.tar.gz":  "\x1f\x8b not really an archive",
		"/dl/unused.file": "x",
	})
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(tool)))
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("Dockerfile", `FROM busybox:latest
ADD --checksum=`+sum+` `+srv.url+`/dl/tool.sh /usr/local/bin/
ADD `+srv.url+`/dl/data.txt /data/renamed.txt
ADD --chmod=644 `+srv.url+`/dl/app.tar.gz /archive/
RUN cat /data/renamed.txt > /copied
CMD ["sh", "-c", "sh /usr/local/bin/tool.sh; stat -c '%a %Y %n' /usr/local/bin/tool.sh /data/renamed.txt /archive/app.tar.gz; cat /copied"]
`)
	e.WriteFile("compose.yaml", "name: addurl\nservices:\n  s:\n    build: .\n")
	e.MustRun("build", "--progress", "plain")
	logs := func() string {
		t.Helper()
		e.MustRun("up", "-d")
		e.MustRun("wait", "s")
		out := e.MustRun("logs", "--no-log-prefix", "s").Stdout
		e.MustRun("down")
		return out
	}
	want := "tool ran\n600 1445412480 /usr/local/bin/tool.sh\n600 1445412480 /data/renamed.txt\n644 1445412480 /archive/app.tar.gz\ndata v1\n"
	if out := logs(); out != want {
		t.Errorf("image content:\n%s\nwant:\n%s", out, want)
	}

	// No change: every step cached, the files revalidated, not sent again.
	before, nm := srv.counts()
	r := e.MustRun("build", "--progress", "plain")
	if n := strings.Count(r.Stderr, "CACHED"); n != 4 {
		t.Errorf("no-change rebuild: %d steps cached, want 4:\n%s", n, r.Stderr)
	}
	after, nm2 := srv.counts()
	// The tool's kept copy has the checksum: it is not even asked for.
	if after-before != 2 || nm2-nm != 2 {
		t.Errorf("no-change rebuild: %d requests, %d not modified; want 2 and 2", after-before, nm2-nm)
	}

	srv.set("/dl/data.txt", "data v2\n")
	r = e.MustRun("build", "--progress", "plain")
	if n := strings.Count(r.Stderr, "CACHED"); n != 1 {
		t.Errorf("after the remote file changed: %d steps cached, want 1 (the checksummed ADD):\n%s", n, r.Stderr)
	}
	if out := logs(); !strings.HasSuffix(out, "data v2\n") {
		t.Errorf("after the remote file changed: %q", out)
	}

	for _, c := range []struct{ name, line, want string }{
		{"checksum mismatch", "ADD --checksum=sha256:" + strings.Repeat("0", 64) + " " + srv.url + "/dl/unused.file /x", "Dockerfile:2: ADD --checksum=sha256:"},
		{"checksum mismatch says so", "ADD --checksum=sha256:" + strings.Repeat("0", 64) + " " + srv.url + "/dl/unused.file /x", "digest mismatch for " + srv.url + "/dl/unused.file"},
		{"not found", "ADD " + srv.url + "/dl/missing /x", "404 Not Found"},
		{"git", "ADD https://github.com/example/repo.git /src", "ADD of a git repository (https://github.com/example/repo.git) is not supported"},
		{"checksum on COPY sources", "ADD --checksum=" + sum + " Dockerfile /x", "--checksum needs a single http(s) source"},
	} {
		e.WriteFile("bad/Dockerfile", "FROM busybox:latest\n"+c.line+"\n")
		e.WriteFile("bad.yaml", "name: bad\nservices:\n  s:\n    build: ./bad\n")
		r := e.Run("-f", "bad.yaml", "build", "--progress", "plain")
		if r.Code == 0 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("%s: exit %d, stderr lacks %q:\n%s", c.name, r.Code, c.want, r.Stderr)
		}
	}
}

// TestBuildCopyParentsExclude: COPY --parents keeps each source's path
// below the destination (from the context root, or from a /./ pivot),
// with wildcards; --exclude leaves files out of COPY and ADD, and a
// change to an excluded file keeps the step cached.
func TestBuildCopyParentsExclude(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	for _, f := range []string{"src/a/one.go", "src/a/one_test.go", "src/b/two.go", "src/b/README.md", "pkg/x/./y/z.txt", "docs/guide.md", "docs/img/logo.png"} {
		e.WriteFile(f, f+"\n")
	}
	e.WriteFile("Dockerfile", `# syntax=docker/dockerfile:1.7-labs
FROM busybox:latest
COPY --parents src/*/one.go pkg/x/./y/z.txt /p/
COPY --parents --exclude=**/*_test.go --exclude=**/*.md src/./ /q/
COPY --exclude=*.md docs /d/
ADD --exclude=img docs /e/
CMD ["find", "/p", "/q", "/d", "/e", "-type", "f"]
`)
	e.WriteFile("compose.yaml", "name: par\nservices:\n  s:\n    build: .\n")
	e.MustRun("build", "--progress", "plain")
	e.MustRun("up", "-d")
	e.MustRun("wait", "s")
	got := strings.Fields(e.MustRun("logs", "--no-log-prefix", "s").Stdout)
	e.MustRun("down")
	want := map[string]bool{"/p/src/a/one.go": true, "/p/y/z.txt": true, "/q/a/one.go": true, "/q/b/two.go": true, "/d/img/logo.png": true, "/e/guide.md": true}
	for _, f := range got {
		if !want[f] {
			t.Errorf("unexpected file %s in the image", f)
		}
		delete(want, f)
	}
	for f := range want {
		t.Errorf("missing %s in the image (got %v)", f, got)
	}
	e.WriteFile("docs/guide.md", "changed\n")
	r := e.MustRun("build", "--progress", "plain")
	if n := strings.Count(r.Stderr, "CACHED"); n != 3 {
		t.Errorf("after changing a file only ADD takes: %d steps cached, want 3:\n%s", n, r.Stderr)
	}
}
