package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// The Debian base images the build tests start from: made by tests/debian
// (debootstrap, once per machine) and imported into each test's store. They
// are one package set under three names: a fresh machine (CI) then pays for
// one debootstrap, not three.
var debianPackages = []string{"golang-go", "nodejs"}

const (
	debianRef = "debian:bookworm"
	goRef     = "debian-golang:bookworm"
	nodeRef   = "debian-nodejs:bookworm"
)

// cachedSteps runs a build with plain progress and args, and fails the
// test unless exactly want steps are CACHED.
func cachedSteps(t *testing.T, e *harness.Env, want int, args ...string) {
	t.Helper()
	r := e.MustRun(append([]string{"build", "--progress", "plain"}, args...)...)
	if n := strings.Count(r.Stderr, "CACHED"); n != want {
		t.Errorf("build %v: %d steps cached, want %d:\n%s", args, n, want, r.Stderr)
	}
}

// TestBuildDebianGo: a Go program built by Debian's Go toolchain with the
// build cache on a cache mount, its static binary copied into a FROM
// scratch stage that compose's build target picks; up runs it.
func TestBuildDebianGo(t *testing.T) {
	e := harness.New(t)
	e.DebianImage(goRef, debianPackages...)
	e.WriteFile("app/go.mod", "module example.com/hello\n\ngo 1.19\n")
	e.WriteFile("app/main.go", `package main

import (
	"fmt"
	"os"
	"runtime"

	"example.com/hello/greet"
)

func main() {
	fmt.Println(greet.Hello(os.Args[1:]...), runtime.Version())
	if _, err := os.Stat("/bin/sh"); err == nil {
		fmt.Println("a shell in the image")
	}
}
`)
	e.WriteFile("app/greet/greet.go", `package greet

import "strings"

// Hello greets names.
func Hello(names ...string) string { return "hello " + strings.Join(names, " and ") }
`)
	e.WriteFile("app/Dockerfile", `# syntax=docker/dockerfile:1.4
FROM `+goRef+` AS build
ENV CGO_ENABLED=0 GOPROXY=off
WORKDIR /src
COPY go.mod ./
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags=-s -o /out/hello . && go version > /out/version

FROM build AS test
RUN go vet ./...

FROM scratch AS final
COPY --from=build /out/hello /hello
ENTRYPOINT ["/hello"]
CMD ["world"]
`)
	e.WriteFile("compose.yaml", `name: gob
services:
  hello:
    build:
      context: ./app
      target: final
`)
	e.MustRun("build")
	e.MustRun("up")
	out := e.MustRun("logs", "--no-log-prefix", "hello").Stdout
	if !strings.HasPrefix(out, "hello world go1.19") || strings.Contains(out, "shell") {
		t.Errorf("output of the built program: %q", out)
	}
	// The final stage holds the binary alone.
	e.MustRun("image", "save", "-o", e.Dir+"/img.tar", "gob-hello")
	if names := layerEntries(t, e.Dir+"/img.tar"); len(names) != 1 || names[0] != "hello" {
		t.Errorf("the scratch image holds %q, want the binary alone", names)
	}
	e.MustRun("down")
	// build: WORKDIR, 2 COPY, RUN; final: COPY (the test stage is not built).
	cachedSteps(t, e, 5)
	// A changed source rebuilds from its COPY on.
	e.WriteFile("app/greet/greet.go", `package greet

import "strings"

// Hello greets names.
func Hello(names ...string) string { return "hi " + strings.Join(names, ", ") }
`)
	r := e.MustRun("run", "--rm", "--build", "-T", "hello", "you", "me")
	if !strings.HasPrefix(r.Stdout, "hi you, me go1.19") {
		t.Errorf("run after a source change: %q\n%s", r.Stdout, r.Stderr)
	}
	e.MustRun("down")
}

// TestBuildDebianNode: a Node app on Debian's nodejs, its dependency
// vendored into node_modules from the context (RUN has no registry), comes
// up healthy behind a published port and answers over HTTP.
func TestBuildDebianNode(t *testing.T) {
	e := harness.New(t)
	e.DebianImage(nodeRef, debianPackages...)
	e.WriteFile("web/package.json", `{"name": "web", "version": "1.0.0", "private": true, "main": "server.js",
 "dependencies": {"greet": "file:./vendor/greet"}}
`)
	e.WriteFile("web/vendor/greet/package.json", `{"name": "greet", "version": "0.1.0", "main": "index.js"}
`)
	e.WriteFile("web/vendor/greet/index.js", "module.exports = (name) => `hello ${name}`;\n")
	e.WriteFile("web/server.js", `const http = require('http');
const greet = require('greet');
const port = Number(process.env.PORT);
http.createServer((req, res) => {
  if (req.url === '/health') { res.end('ok'); return; }
  res.setHeader('Content-Type', 'text/plain');
  res.end(greet(process.env.WHO) + ' from node ' + process.version + ' (' + process.env.NODE_ENV + ')\n');
}).listen(port, () => console.log('listening on ' + port));
`)
	e.WriteFile("web/.dockerignore", "node_modules\nDockerfile\n")
	e.WriteFile("web/Dockerfile", `# syntax=docker/dockerfile:1.4
FROM `+nodeRef+`
WORKDIR /app
COPY package.json ./
COPY vendor/greet/ node_modules/greet/
COPY server.js ./
RUN node --check server.js && node -e "require('greet')" && chown -R nobody /app
ENV NODE_ENV=production PORT=8080
USER nobody
EXPOSE 8080
CMD ["node", "server.js"]
`)
	port := freePort(t)
	e.WriteFile("compose.yaml", fmt.Sprintf(`name: nodeapp
services:
  web:
    build: ./web
    environment:
      WHO: compose
    ports: ["127.0.0.1:%d:8080"]
    healthcheck:
      test: ["CMD", "node", "-e", "require('http').get('http://127.0.0.1:8080/health', r => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
      interval: 1s
      retries: 30
`, port))
	e.MustRun("up", "-d", "--build", "--wait", "--wait-timeout", "60")
	body, err := getReady(t, port)
	if err != nil || !strings.HasPrefix(body, "hello compose from node v18.") || !strings.HasSuffix(body, "(production)\n") {
		t.Errorf("GET /: %q, %v", body, err)
	}
	if out := e.MustRun("logs", "--no-log-prefix", "web").Stdout; out != "listening on 8080\n" {
		t.Errorf("logs: %q", out)
	}
	if out := e.MustRun("exec", "-T", "web", "id", "-un").Stdout; out != "nobody\n" {
		t.Errorf("the app runs as %q, want nobody", out)
	}
	e.MustRun("down", "-t", "1")
	// WORKDIR, 3 COPY, RUN.
	cachedSteps(t, e, 5)
}

// TestBuildDebianHeredocMounts: BuildKit's Dockerfile 1.4 syntax on a
// real Debian userland: RUN heredocs run by the default shell, by a
// shebang and by a command reading them on stdin; COPY heredocs with and
// without expansion and with tabs stripped; a cache mount whose files
// outlive the build (a --no-cache build sees the first build's); bind
// mounts from the context and from a stage; --chown and USER by the
// names of the image's /etc/passwd; the PATH of Docker's debian images. A
// rebuild with no change is all cached.
func TestBuildDebianHeredocMounts(t *testing.T) {
	e := harness.New(t)
	e.DebianImage(debianRef, debianPackages...)
	e.WriteFile("data/in.txt", "from the context\n")
	e.WriteFile("Dockerfile", "# syntax=docker/dockerfile:1.4\n"+`FROM `+debianRef+` AS tools
RUN <<EOF
set -e
mkdir -p /tools
echo "from stage $(dpkg --print-architecture)" > /tools/t.txt
EOF

FROM `+debianRef+`
ARG GREETING=hello
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY <<EOF /etc/apt/apt.conf.d/99norecommends
APT::Install-Recommends "false";
EOF
COPY <<EOF /greeting
${GREETING} from a heredoc
EOF
COPY <<"EOF" /raw
${GREETING} stays
EOF
COPY --chmod=755 <<-EOF /usr/local/bin/greet
	#!/bin/bash
	echo "greet \$1"
	EOF
RUN <<EOF
#!/bin/bash
set -euo pipefail
arr=(a b c)
echo "bash ${BASH_VERSINFO[0]} ${#arr[@]}" > /arr
EOF
RUN apt-config dump | grep 'Install-Recommends' > /apt
RUN bash -s <<EOF > /stdin
echo "stdin \$((6 * 7)) $GREETING"
EOF
RUN --mount=type=cache,target=/var/cache/runs,id=runs <<EOF
set -e
echo run >> /var/cache/runs/log
wc -l < /var/cache/runs/log > /cache-runs
EOF
RUN --mount=type=bind,source=data,target=/data cp /data/in.txt /from-context
RUN --mount=type=bind,from=tools,source=/tools,target=/t cat /t/t.txt > /from-stage
COPY --chown=daemon:daemon <<EOF /srv/owned
owned
EOF
USER daemon
WORKDIR /srv
RUN echo "$(id -un) $(stat -c %U:%G owned) $(pwd)" > /tmp/who
USER root
CMD ["bash", "-c", "cat /etc/debian_version /greeting /raw /arr /apt /stdin /cache-runs /from-context /from-stage /tmp/who; greet world; ls -d /data /t /var/cache/runs 2>&1 | wc -l; echo $PATH"]
`)
	e.WriteFile("compose.yaml", "name: here\nservices:\n  s:\n    build: .\n")
	want := func(greeting string, runs int) string {
		return fmt.Sprintf(`%[1]s from a heredoc
${GREETING} stays
bash 5 3
APT::Install-Recommends "false";
stdin 42 %[1]s
%[2]d
from the context
from stage amd64
daemon daemon:daemon /srv
greet world
3
/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
`, greeting, runs)
	}
	check := func(greeting string, runs int) {
		t.Helper()
		e.MustRun("up")
		out := e.MustRun("logs", "--no-log-prefix", "s").Stdout
		// Debian 12, whichever point release the mirror had, then the rest.
		version, rest, _ := strings.Cut(out, "\n")
		if !strings.HasPrefix(version, "12.") || rest != want(greeting, runs) {
			t.Errorf("output:\n%s\nwant 12.x then:\n%s", out, want(greeting, runs))
		}
		e.MustRun("down")
	}
	e.MustRun("build")
	check("hello", 1)
	// tools: RUN; final: 5 COPY, 7 RUN, WORKDIR.
	cachedSteps(t, e, 14)
	// The cache mount keeps what the first build wrote.
	e.MustRun("build", "--no-cache")
	check("hello", 2)
	cachedSteps(t, e, 14)
	// The expanded body of a heredoc keys its COPY: another value of the
	// ARG it names rebuilds from there (the tools stage and the first
	// COPY stay cached).
	cachedSteps(t, e, 2, "--build-arg", "GREETING=hi")
	check("hi", 3)
}
