package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/berthrun/berth/internal/testimage"
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

// TestBuildSSH: RUN --mount=type=ssh reaches the client's agent socket
// (`build --ssh default` and $SSH_AUTH_SOCK, here a socket the test
// serves) through a socket at /run/buildkit/ssh_agent.0 named by
// SSH_AUTH_SOCK; compose build.ssh with a key file is served by an agent
// of berth's own (the RUN lists the key); a required id nobody gave is an
// error; no socket is left in the image.
func TestBuildSSH(t *testing.T) {
	dir := t.TempDir()
	sock := dir + "/agent.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "hello from the agent")
			c.Close()
		}
	}()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "deploy key")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("keys/id_deploy", string(pem.EncodeToMemory(block)))
	if err := os.WriteFile(e.Dir+"/sshcheck", harness.BuildStatic(t, "./testdata/sshcheck"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.WriteFile(".dockerignore", "keys\n")
	e.WriteFile("Dockerfile", `FROM busybox:latest
COPY sshcheck /bin/
RUN --mount=type=ssh sshcheck line > /agent.txt
RUN --mount=type=ssh,id=deploy,required sshcheck keys > /keys.txt
RUN --mount=type=ssh,id=absent echo optional mount skipped > /optional.txt
CMD ["cat", "/agent.txt", "/keys.txt", "/optional.txt"]
`)
	e.WriteFile("compose.yaml", `name: sshb
services:
  s:
    build:
      context: .
      ssh:
        - deploy=./keys/id_deploy
`)
	e.Environ = append(e.Environ, "SSH_AUTH_SOCK="+sock)
	e.MustRun("build", "--ssh", "default")
	e.MustRun("up", "-d")
	e.MustRun("wait", "s")
	want := "socket /run/buildkit/ssh_agent.0\nline hello from the agent\nsocket /run/buildkit/ssh_agent.0\nkey " + ssh.FingerprintSHA256(signer.PublicKey()) + "\noptional mount skipped\n"
	if out := e.MustRun("logs", "--no-log-prefix", "s").Stdout; out != want {
		t.Errorf("what the RUNs saw:\n%s\nwant:\n%s", out, want)
	}
	e.MustRun("down")
	e.MustRun("image", "save", "-o", e.Dir+"/img.tar", "sshb-s")
	for _, name := range layerEntries(t, e.Dir+"/img.tar") {
		if strings.HasPrefix(name, "run") {
			t.Errorf("a layer holds %s, made only for the ssh mount", name)
		}
	}
	// Without --ssh default, the first RUN's optional mount is skipped and
	// the RUN fails to connect; a required id fails before any RUN.
	e.WriteFile("Dockerfile", "FROM busybox:latest\nRUN --mount=type=ssh,id=other,required true\n")
	r := e.Run("build", "--ssh", "default")
	if r.Code == 0 || !strings.Contains(r.Stderr, `Dockerfile:2: RUN --mount=type=ssh,id=other,required true: no SSH key "other" forwarded`) {
		t.Errorf("a required ssh id nobody gave: exit %d\n%s", r.Code, r.Stderr)
	}
}

// TestBuildSecretsFromEnv: compose secrets with `environment:` reach
// build.secrets users, `build --secret id=…,env=VAR` and `src=FILE` too
// (as a file at /run/secrets/ID, or as a variable with env=); none of
// them is in the image or its cache key.
func TestBuildSecretsFromEnv(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("flag.txt", "from a file\n")
	e.WriteFile("Dockerfile", `FROM busybox:latest
RUN --mount=type=secret,id=api_token,required test "$(cat /run/secrets/api_token)" = "from compose env" && stat -c '%a %u' /run/secrets/api_token > /mode
RUN --mount=type=secret,id=flagenv,env=FLAG,required test "$FLAG" = "from the flag env" && touch /ok-env
RUN --mount=type=secret,id=flagfile,required,mode=0440,uid=7 test "$(cat /run/secrets/flagfile)" = "from a file" && stat -c '%a %u' /run/secrets/flagfile > /mode2
CMD ["cat", "/mode", "/mode2"]
`)
	e.WriteFile("compose.yaml", `name: sec
services:
  s:
    build:
      context: .
      secrets: [api_token]
secrets:
  api_token:
    environment: TOKEN_VAR
`)
	e.Environ = append(e.Environ, "TOKEN_VAR=from compose env", "FLAG_VAR=from the flag env")
	e.MustRun("build", "--secret", "id=flagenv,env=FLAG_VAR", "--secret", "id=flagfile,src=flag.txt")
	e.MustRun("up", "-d")
	e.MustRun("wait", "s")
	if out := e.MustRun("logs", "--no-log-prefix", "s").Stdout; out != "400 0\n440 7\n" {
		t.Errorf("secret files as the RUNs saw them: %q", out)
	}
	e.MustRun("down")
	e.MustRun("image", "save", "-o", e.Dir+"/img.tar", "sec-s")
	for _, name := range layerEntries(t, e.Dir+"/img.tar") {
		if strings.HasPrefix(name, "run") {
			t.Errorf("a layer holds %s, made only for a secret", name)
		}
	}
	// A changed secret value does not rerun anything, as in BuildKit.
	e.Environ = append(e.Environ, "TOKEN_VAR=other")
	r := e.Run("build", "--progress", "plain", "--secret", "id=flagenv,env=FLAG_VAR", "--secret", "id=flagfile,src=flag.txt")
	if n := strings.Count(r.Stderr, "CACHED"); r.Code != 0 || n != 3 {
		t.Errorf("rebuild with another secret value: exit %d, %d cached:\n%s", r.Code, n, r.Stderr)
	}
	for _, c := range []struct{ flag, want string }{
		{"id=flagenv,env=NOT_SET_ANYWHERE", "environment variable NOT_SET_ANYWHERE is not set"},
		{"src=flag.txt", "id is required"},
		{"id=x,src=missing.txt", "secret x: stat missing.txt"},
	} {
		r := e.Run("build", "--secret", c.flag)
		if r.Code == 0 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("--secret %s: exit %d, stderr lacks %q:\n%s", c.flag, r.Code, c.want, r.Stderr)
		}
	}
}

// TestBuildPrint: `build --print` writes the bake definition docker
// compose prints (a default group of the targets to build, one target per
// service with a build section, compose's labels and tags) and builds
// nothing.
func TestBuildPrint(t *testing.T) {
	e := harness.New(t)
	e.WriteFile("web/Dockerfile", "FROM busybox:latest\n")
	e.WriteFile("api.v2/Dockerfile", "FROM busybox:latest\n")
	e.WriteFile("compose.yaml", `name: prt
services:
  web:
    build:
      context: ./web
      args:
        GREETING: "hi ${USER_NAME:-you}"
        FROM_ENV:
      additional_contexts:
        api: service:api.v2
      secrets: [tok]
      ssh: [default]
      extra_hosts: ["db.local=10.0.0.2"]
      tags: ["registry.example/web:1"]
      labels:
        team: blue
  api.v2:
    image: example/api:2
    build: ./api.v2
  cache:
    image: redis
secrets:
  tok:
    environment: TOKEN
`)
	e.Environ = append(e.Environ, "FROM_ENV=env value")
	r := e.MustRun("build", "--print", "--build-arg", "EXTRA=1", "web")
	var got struct {
		Group  map[string]struct{ Targets []string }
		Target map[string]map[string]any
	}
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("--print is not JSON: %v\n%s", err, r.Stdout)
	}
	if d := got.Group["default"].Targets; len(d) != 1 || d[0] != "web" {
		t.Errorf("default group: %v", d)
	}
	if len(got.Target) != 2 || got.Target["api_v2"] == nil {
		t.Fatalf("targets: %v", got.Target)
	}
	web, _ := json.Marshal(got.Target["web"])
	for _, want := range []string{
		`"context":"` + e.Dir + `/web"`,
		`"dockerfile":"` + e.Dir + `/web/Dockerfile"`,
		`"args":{"EXTRA":"1","FROM_ENV":"env value","GREETING":"hi you"}`,
		`"contexts":{"api":"target:api_v2"}`,
		`"secret":["id=tok,type=env,env=TOKEN"]`,
		`"ssh":["default="]`,
		`"extra-hosts":{"db.local":"10.0.0.2"}`,
		`"tags":["registry.example/web:1","prt-web"]`,
		`"com.docker.compose.project":"prt"`,
		`"com.docker.compose.service":"web"`,
		`"team":"blue"`,
		`"output":["type=docker"]`,
	} {
		if !strings.Contains(string(web), want) {
			t.Errorf("target web lacks %s:\n%s", want, web)
		}
	}
	if api, _ := json.Marshal(got.Target["api_v2"]); !strings.Contains(string(api), `"tags":["example/api:2"]`) {
		t.Errorf("target api_v2: %s", api)
	}
	if out := e.MustRun("image", "ls", "-q").Stdout; out != "" {
		t.Errorf("--print built something:\n%s", out)
	}
}

// TestBuildPullPolicyRefresh: pull_policy daily keeps an image pulled
// moments ago even when the registry has a newer one; every_1s pulls
// again once a second has passed, and up recreates the service on it;
// `run` follows the same rule.
func TestBuildPullPolicyRefresh(t *testing.T) {
	reg := testimage.StartRegistry(t)
	push := func(motd string) string {
		t.Helper()
		img, err := testimage.Busybox(testimage.WithFile("etc/motd", 0o644, motd))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := reg.Push(context.Background(), "team/app:1", img)
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	ref := push("v1\n")
	e := harness.New(t)
	compose := func(policy string) {
		e.WriteFile("compose.yaml", "name: refresh\nservices:\n  s:\n    image: "+ref+"\n    pull_policy: "+policy+"\n    command: [\"sleep\", \"3600\"]\n    init: true\n")
	}
	motd := func() string {
		t.Helper()
		return e.MustRun("exec", "-T", "s", "cat", "/etc/motd").Stdout
	}
	compose("daily")
	e.MustRun("up", "-d")
	if got := motd(); got != "v1\n" {
		t.Fatalf("first up: %q", got)
	}
	push("v2\n")
	e.MustRun("up", "-d")
	if got := motd(); got != "v1\n" {
		t.Errorf("daily, pulled moments ago: the image was pulled again (%q)", got)
	}
	if out := e.MustRun("run", "--rm", "-T", "s", "cat", "/etc/motd").Stdout; out != "v1\n" {
		t.Errorf("run under daily: %q", out)
	}
	compose("every_1s")
	time.Sleep(1100 * time.Millisecond)
	e.MustRun("up", "-d")
	if got := motd(); got != "v2\n" {
		t.Errorf("every_1s, pulled over a second ago: %q, want the new image", got)
	}
	e.MustRun("down", "-t", "1")
}

// TestBuildProgress: on a terminal, build draws compose's live tree
// ("[+] Building 1.2s (n/m) FINISHED", one line per step with its time at
// the right edge, CACHED steps, a running step's output below it);
// without one, BuildKit's plain lines; -q prints nothing; a failing RUN
// ends with its last output lines, its exit code and the Dockerfile
// around its line, on a terminal and off it.
func TestBuildProgress(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("a.txt", "a\n")
	e.WriteFile("Dockerfile", "FROM busybox:latest\nCOPY a.txt /a\nRUN echo step output && sleep 1\nRUN echo done\n")
	e.WriteFile("compose.yaml", "name: prog\nservices:\n  s:\n    build: .\n")
	norm := func(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }
	out, code := onPTY(t, e, nil, "build")
	out = norm(out)
	if code != 0 {
		t.Fatalf("build on a terminal: exit %d\n%s", code, out)
	}
	for _, want := range []string{"[+] Building ", "(4/4) FINISHED\n", " => => # 0.", " step output"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal build lacks %q:\n%s", want, out)
		}
	}
	last := out[strings.LastIndex(out, "[+] Building"):]
	for _, want := range []string{" => [1/4] FROM busybox:latest", " => [2/4] COPY a.txt /a", " => [3/4] RUN echo step output && sleep 1", " => [4/4] RUN echo done"} {
		i := strings.Index(last, want)
		if i < 0 {
			t.Errorf("the last tree lacks %q:\n%s", want, last)
			continue
		}
		// The 101-column terminal: the time ends the line at column 100.
		line, _, _ := strings.Cut(last[i:], "\n")
		if len(line) != 100 || !strings.HasSuffix(line, "s") {
			t.Errorf("tree line is not laid out in the terminal's width: %q", line)
		}
	}
	out, _ = onPTY(t, e, nil, "build")
	if out = norm(out); !strings.Contains(out, " => CACHED [3/4] RUN echo step output && sleep 1") {
		t.Errorf("terminal rebuild shows no CACHED step:\n%s", out)
	}
	r := e.MustRun("build")
	for _, want := range []string{"#1 [1/4] FROM busybox:latest\n", "] COPY a.txt /a\n", " CACHED\n"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("build off a terminal lacks %q:\n%s", want, r.Stderr)
		}
	}
	if strings.Contains(r.Stderr, "\x1b[") {
		t.Errorf("build off a terminal draws with ANSI sequences:\n%q", r.Stderr)
	}
	if r := e.MustRun("build", "-q"); r.Stderr != "" || r.Stdout != "" {
		t.Errorf("build -q printed: %q %q", r.Stdout, r.Stderr)
	}

	e.WriteFile("Dockerfile", "FROM busybox:latest\nRUN echo last words; exit 3\nRUN echo never\n")
	wants := []string{
		"ERROR [2/3] RUN echo last words; exit 3",
		"------\n > [2/3] RUN echo last words; exit 3:\n0.",
		" last words\n------\nDockerfile:2\n--------------------\n   1 |     FROM busybox:latest\n   2 | >>> RUN echo last words; exit 3\n   3 |     RUN echo never\n--------------------\n",
		`Dockerfile:2: RUN echo last words; exit 3: process "/bin/sh -c echo last words; exit 3" did not complete successfully: exit code: 3`,
	}
	out, code = onPTY(t, e, nil, "build")
	out = norm(out)
	r = e.Run("build")
	for _, c := range []struct {
		name, out string
		code      int
	}{{"terminal", out, code}, {"plain", r.Stderr, r.Code}} {
		if c.code == 0 {
			t.Errorf("%s: a failing RUN built", c.name)
		}
		for _, want := range wants {
			if c.name == "plain" && strings.HasPrefix(want, "ERROR") {
				want = "ERROR: process"
			}
			if !strings.Contains(c.out, want) {
				t.Errorf("%s: failing build lacks %q:\n%s", c.name, want, c.out)
			}
		}
	}
}

// TestBuildPlatformAndFrontend: a platform other than linux/amd64 (compose
// build.platforms, the service's platform, FROM --platform) and a
// `# syntax=` naming another frontend image are one clear line each, and
// nothing is pulled or tagged.
func TestBuildPlatformAndFrontend(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("Dockerfile", "FROM busybox:latest\n")
	for _, c := range []struct{ name, compose, dockerfile, want string }{
		{"build.platforms", "    build:\n      context: .\n      platforms: [linux/amd64, linux/arm64]\n", "", `build platform "linux/arm64" is not supported: berth builds linux/amd64 only`},
		{"service platform", "    build: .\n    platform: linux/arm64/v8\n", "", `platform "linux/arm64/v8" is not supported: berth builds linux/amd64 only`},
		{"FROM --platform", "    build: .\n", "FROM --platform=linux/riscv64 busybox:latest\n", "Dockerfile:1: FROM --platform=linux/riscv64: berth builds for linux/amd64 only"},
		{"other frontend", "    build: .\n", "# syntax=docker.io/someone/frontend:1\nFROM busybox:latest\n", `Dockerfile:1: syntax "docker.io/someone/frontend:1": only the built-in frontend`},
	} {
		df := "FROM busybox:latest\n"
		if c.dockerfile != "" {
			df = c.dockerfile
		}
		e.WriteFile("Dockerfile", df)
		e.WriteFile("compose.yaml", "name: plat\nservices:\n  s:\n"+c.compose)
		r := e.Run("build")
		if r.Code == 0 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("%s: exit %d, stderr lacks %q:\n%s", c.name, r.Code, c.want, r.Stderr)
		}
	}
	if out := e.MustRun("image", "ls", "-q").Stdout; strings.Count(out, "\n") != 1 {
		t.Errorf("images after the refused builds:\n%s", out)
	}
	// linux/amd64 itself is fine, written either way.
	e.WriteFile("compose.yaml", "name: plat\nservices:\n  s:\n    build:\n      context: .\n      platforms: [linux/amd64]\n    platform: linux/amd64\n")
	e.WriteFile("Dockerfile", "FROM --platform=$BUILDPLATFORM busybox:latest\n")
	e.MustRun("build")
}
