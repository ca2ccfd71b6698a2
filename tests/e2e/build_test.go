package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/berthrun/berth/tests/harness"
)

// TestBuildMultiStage: a multi-stage Dockerfile with BuildKit's syntax
// (global ARG in FROM, heredoc RUN, exec-form RUN, WORKDIR, COPY --from)
// builds a FROM scratch image with busybox copied in; an unused stage
// naming an image nobody has is never resolved; `up` runs the result.
func TestBuildMultiStage(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("app/hello.txt", "hello from the context\n")
	e.WriteFile("app/Dockerfile", `# syntax=docker/dockerfile:1.4
ARG BASE=busybox:latest
FROM ${BASE} AS builder
ARG MSG=default
ARG TARGETARCH
WORKDIR /src
COPY hello.txt ./
RUN <<EOF
set -e
echo "$MSG $TARGETARCH" > /src/msg
cat hello.txt >> /src/msg
EOF
RUN ["sh", "-c", "echo exec-form > /src/exec"]

FROM gloursdocker/docker AS unused
COPY --from=also/never:pulled / /

FROM scratch
COPY --from=builder /bin/busybox /bin/busybox
COPY --from=builder /src/ /out/
ENV PATH=/bin
LABEL org.example.built=yes
ENTRYPOINT ["/bin/busybox"]
CMD ["cat", "/out/msg"]
`)
	e.WriteFile("compose.yaml", `
name: bld
services:
  app:
    build:
      context: ./app
      args:
        MSG: hi
    command: ["sleep", "3600"]
    init: true
`)
	r := e.MustRun("build")
	if strings.Contains(r.Stderr, "gloursdocker") || strings.Contains(r.Stderr, "never:pulled") {
		t.Errorf("an unused stage was built:\n%s", r.Stderr)
	}
	info := e.MustRun("image", "inspect", "bld-app").Stdout
	for _, want := range []string{`"/bin/busybox"`, "org.example.built", "PATH=/bin"} {
		if !strings.Contains(info, want) {
			t.Errorf("image inspect lacks %s:\n%s", want, info)
		}
	}
	e.MustRun("up", "-d")
	if out := e.MustRun("exec", "-T", "app", "/bin/busybox", "cat", "/out/msg", "/out/exec").Stdout; out != "hi amd64\nhello from the context\nexec-form\n" {
		t.Errorf("built image content: %q", out)
	}
	e.MustRun("down", "-t", "1")

	// A rebuild without changes runs nothing.
	r = e.MustRun("build")
	if n := strings.Count(r.Stderr, "CACHED"); n != 6 {
		t.Errorf("no-change rebuild: %d steps cached, want 6:\n%s", n, r.Stderr)
	}
}

// TestBuildCache: changing one source reruns only the steps from the COPY
// that takes it; a file .dockerignore excludes never invalidates; `up`
// runs the image.
func TestBuildCache(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("a.txt", "a1\n")
	e.WriteFile("b.txt", "b1\n")
	e.WriteFile("ignored.txt", "i1\n")
	e.WriteFile(".dockerignore", "ignored.txt\ncompose.yaml\nDockerfile\n.dockerignore\n")
	e.WriteFile("Dockerfile", `FROM busybox:latest
COPY a.txt /a.txt
RUN cat /a.txt > /a2
COPY b.txt /b.txt
RUN cat /b.txt > /b2
COPY . /ctx/
RUN ls /ctx > /list
CMD ["cat", "/list", "/b2"]
`)
	compose := "name: cache\nservices:\n  s:\n    build: .\n"
	e.WriteFile("compose.yaml", compose)
	cached := func(want int) {
		t.Helper()
		r := e.MustRun("build", "--progress", "plain")
		if n := strings.Count(r.Stderr, "CACHED"); n != want {
			t.Errorf("%d steps cached, want %d:\n%s", n, want, r.Stderr)
		}
	}
	cached(0)
	cached(6)
	e.WriteFile("ignored.txt", "i2\n")
	cached(6)
	e.WriteFile("b.txt", "b2\n")
	cached(2)
	cached(6)
	e.MustRun("up", "-d")
	e.MustRun("wait", "s")
	if out := e.MustRun("logs", "--no-log-prefix", "s").Stdout; out != "a.txt\nb.txt\nb2\n" {
		t.Errorf("logs of the built image: %q", out)
	}
	e.MustRun("down")
}

// TestBuildErrors: bad input fails with one clear line naming where, and
// tags nothing.
func TestBuildErrors(t *testing.T) {
	cases := []struct {
		name, dockerfile, target, want string
		link                           bool
	}{
		{name: "syntax", dockerfile: "FROM busybox:latest\nENV\n", want: "Dockerfile:2: ENV requires at least one argument"},
		{name: "unknown instruction", dockerfile: "FROM busybox:latest\nFROB x\n", want: "Dockerfile:2: unknown instruction: FROB"},
		{name: "missing base image", dockerfile: "FROM 127.0.0.1:1/none/here:1\n", want: "Dockerfile:1: FROM 127.0.0.1:1/none/here:1"},
		{name: "source outside the context", dockerfile: "FROM busybox:latest\nCOPY ../secret /x\n", want: "Dockerfile:2: COPY ../secret /x: source \"../secret\" is outside the build context"},
		{name: "symlink outside the context", dockerfile: "FROM busybox:latest\nCOPY link /x\n", link: true, want: "Dockerfile:2: COPY link /x: source \"link\" points outside the build context"},
		{name: "failing RUN", dockerfile: "FROM busybox:latest\nRUN echo last words; exit 3\n", want: "Dockerfile:2: RUN echo last words; exit 3: process \"/bin/sh -c echo last words; exit 3\" did not complete successfully: exit code: 3"},
		{name: "unknown target", dockerfile: "FROM busybox:latest AS a\n", target: "nope", want: "target stage \"nope\" could not be found"},
		{name: "other frontend", dockerfile: "# syntax=example.com/frontend:2\nFROM busybox:latest\n", want: "Dockerfile:1: syntax \"example.com/frontend:2\""},
		{name: "platform", dockerfile: "FROM --platform=linux/arm64 busybox:latest\n", want: "berth builds for linux/amd64 only"},
	}
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("outside.txt", "secret\n")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.WriteFile("ctx/Dockerfile", c.dockerfile)
			os.Remove(e.Dir + "/ctx/link")
			if c.link {
				if err := os.Symlink(e.Dir+"/outside.txt", e.Dir+"/ctx/link"); err != nil {
					t.Fatal(err)
				}
			}
			compose := "name: bad\nservices:\n  s:\n    build:\n      context: ./ctx\n"
			if c.target != "" {
				compose += "      target: " + c.target + "\n"
			}
			e.WriteFile("compose.yaml", compose)
			r := e.Run("build")
			if r.Code == 0 {
				t.Fatalf("build succeeded:\n%s", r.Stderr)
			}
			if !strings.Contains(r.Stderr, c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, r.Stderr)
			}
			if c.name == "failing RUN" && !strings.Contains(r.Stderr, "last words") {
				t.Errorf("the failing RUN's output is not shown:\n%s", r.Stderr)
			}
			if out := e.MustRun("image", "ls").Stdout; strings.Contains(out, "bad-s") {
				t.Errorf("a failed build tagged an image:\n%s", out)
			}
		})
	}
}
