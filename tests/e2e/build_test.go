package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/internal/testimage"
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
// that takes it; a file .dockerignore excludes never invalidates; the
// cache survives `image prune` and goes with `builder prune`; `image
// history` shows the steps; `up` runs the image.
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
	// Layers only the cache uses survive an image prune, not builder prune.
	e.MustRun("image", "prune", "-f")
	cached(6)
	e.MustRun("builder", "prune", "-f")
	cached(0)
	if out := e.MustRun("image", "history", "--no-trunc", "cache-s").Stdout; !strings.Contains(out, "RUN /bin/sh -c cat /b.txt > /b2 # buildkit") || !strings.Contains(out, "buildkit.dockerfile.v0") {
		t.Errorf("image history:\n%s", out)
	}
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

// TestBuildCopyAdd: COPY and ADD follow Docker's rules: a directory's
// contents, a trailing slash, several sources and wildcards, a file
// renamed, --chown and --chmod, ADD unpacking a local tar but COPY not,
// a symlink inside the context followed, WORKDIR-relative destinations;
// and the metadata instructions reach the image config.
func TestBuildCopyAdd(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("dir/x.txt", "x\n")
	e.WriteFile("dir/sub/y.txt", "y\n")
	e.WriteFile("f1.go", "1\n")
	e.WriteFile("f2.go", "2\n")
	if err := os.Symlink("dir/x.txt", e.Dir+"/link"); err != nil {
		t.Fatal(err)
	}
	tarball, err := testimage.Tar(testimage.Dir("t/", 0o755), testimage.File("t/in.txt", 0o600, "in tar\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.Dir+"/data.tar", tarball, 0o644); err != nil {
		t.Fatal(err)
	}
	e.WriteFile("Dockerfile", `FROM busybox:latest
COPY dir /d1
COPY dir/ /d2/
COPY f1.go f2.go /gos/
COPY *.go /glob/
COPY f1.go /renamed.go
COPY --chown=app:app --chmod=750 dir /owned
ADD data.tar /extracted/
COPY data.tar /kept/
COPY link /linked
WORKDIR /w
COPY f1.go .
RUN cd / && find d1 d2 gos glob renamed.go owned extracted kept linked w | sort > /report && \
    stat -c '%n %u:%g %a' owned owned/x.txt owned/sub extracted/t/in.txt >> /report && cat linked >> /report
USER app
EXPOSE 8080 53/udp
VOLUME /data
HEALTHCHECK --interval=5s CMD true
STOPSIGNAL SIGINT
ENTRYPOINT ["cat"]
CMD ["/report"]
`)
	e.WriteFile("compose.yaml", "name: cp\nservices:\n  s:\n    build: .\n")
	e.MustRun("up", "-d")
	e.MustRun("wait", "s")
	want := `d1
d1/sub
d1/sub/y.txt
d1/x.txt
d2
d2/sub
d2/sub/y.txt
d2/x.txt
extracted
extracted/t
extracted/t/in.txt
glob
glob/f1.go
glob/f2.go
gos
gos/f1.go
gos/f2.go
kept
kept/data.tar
linked
owned
owned/sub
owned/sub/y.txt
owned/x.txt
renamed.go
w
w/f1.go
owned 1000:1000 750
owned/x.txt 1000:1000 750
owned/sub 1000:1000 750
extracted/t/in.txt 0:0 600
x
`
	if out := e.MustRun("logs", "--no-log-prefix", "s").Stdout; out != want {
		t.Errorf("the built filesystem:\n%s\nwant:\n%s", out, want)
	}
	info := e.MustRun("image", "inspect", "cp-s").Stdout
	for _, w := range []string{`"User": "app"`, `"8080/tcp"`, `"53/udp"`, `"/data"`, `"StopSignal": "SIGINT"`, `"WorkingDir": "/w"`, `"Entrypoint": [`} {
		if !strings.Contains(info, w) {
			t.Errorf("image inspect lacks %s:\n%s", w, info)
		}
	}
	e.MustRun("image", "save", "-o", e.Dir+"/saved.tar", "cp-s")
	e.MustRun("down")
}

// TestBuildUpRebuild: `up` builds a missing image, `up --build` with a
// changed source rebuilds it and recreates the container; two services
// sharing one build build it once; `up --no-build` builds nothing; RUN
// --network=none has no interface but lo, and RUN by default is on the
// build bridge with a default route.
func TestBuildUpRebuild(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("v.txt", "v1\n")
	e.WriteFile("Dockerfile", `FROM busybox:latest
RUN --network=none ls /sys/class/net > /nets
RUN ls /sys/class/net > /nets-bridge && ip route | grep -c '^default via' > /routes
COPY v.txt /v.txt
CMD ["sleep", "3600"]
`)
	e.WriteFile("compose.yaml", `name: re
services:
  a:
    build: .
    image: shared:1
    init: true
  b:
    build: .
    image: shared:1
    init: true
`)
	r := e.MustRun("up", "-d")
	if n := strings.Count(r.Stderr, "Building"); n != 1 {
		t.Errorf("shared build built %d times:\n%s", n, r.Stderr)
	}
	if out := e.MustRun("exec", "-T", "a", "cat", "/v.txt", "/nets", "/nets-bridge", "/routes").Stdout; out != "v1\nlo\neth0\nlo\n1\n" {
		t.Errorf("first build: %q", out)
	}
	id1 := e.MustRun("ps", "-q", "a").Stdout
	r = e.MustRun("up", "-d")
	if strings.Contains(r.Stderr, "Building") {
		t.Errorf("up rebuilt a present image:\n%s", r.Stderr)
	}
	e.WriteFile("v.txt", "v2\n")
	e.MustRun("up", "-d", "--no-build")
	if out := e.MustRun("exec", "-T", "a", "cat", "/v.txt").Stdout; out != "v1\n" {
		t.Errorf("after --no-build: %q", out)
	}
	e.MustRun("up", "-d", "--build")
	if out := e.MustRun("exec", "-T", "b", "cat", "/v.txt").Stdout; out != "v2\n" {
		t.Errorf("after --build: %q", out)
	}
	if id2 := e.MustRun("ps", "-q", "a").Stdout; id2 == id1 {
		t.Errorf("the rebuilt image did not recreate the container")
	}
	e.MustRun("down", "-t", "1")
}

// TestBuildRunMounts: RUN --mount of a cache directory kept across builds,
// read-only and rw binds of the context and of a stage, tmpfs, and a
// compose build secret; compose extra_hosts and shm_size reach RUN; no
// mount point is left in the image, a rw bind
// never writes to the context, and a bind's source is part of the key.
func TestBuildRunMounts(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("src/in.txt", "in1\n")
	e.WriteFile("token.txt", "s3cret\n")
	e.WriteFile("Dockerfile", `FROM busybox:latest AS tools
RUN echo tool > /tool.txt

FROM busybox:latest
RUN --mount=type=cache,target=/cache,id=c1 sh -c 'echo run >> /cache/log; wc -l < /cache/log > /count'
RUN --mount=type=bind,source=src,target=/src cat /src/in.txt > /from-bind
RUN --mount=type=bind,from=tools,source=/tool.txt,target=/mnt/t.txt cat /mnt/t.txt > /from-stage
RUN --mount=type=tmpfs,target=/scratch sh -c 'echo x > /scratch/f && test -f /scratch/f'
RUN --mount=type=secret,id=token,required sh -c 'test "$(cat /run/secrets/token)" = s3cret'
RUN --mount=type=bind,source=src,target=/src,rw sh -c 'echo w > /src/written'
RUN grep -c 'extra.example' /etc/hosts > /hosts && df -k /dev/shm | awk 'NR==2 {print $2}' > /shm
CMD ["sleep", "3600"]
`)
	e.WriteFile("compose.yaml", `name: mnt
services:
  s:
    build:
      context: .
      secrets: [token]
      extra_hosts:
        - "extra.example=10.1.2.3"
      shm_size: 8m
    init: true
secrets:
  token:
    file: ./token.txt
`)
	e.MustRun("build")
	e.MustRun("build", "--no-cache")
	e.MustRun("up", "-d")
	if out := e.MustRun("exec", "-T", "s", "cat", "/count", "/from-bind", "/from-stage", "/hosts", "/shm").Stdout; out != "2\nin1\ntool\n1\n8192\n" {
		t.Errorf("results: %q", out)
	}
	if out := e.MustRun("exec", "-T", "s", "sh", "-c", "ls -d /cache /src /scratch /mnt/t.txt /run/secrets 2>/dev/null; true").Stdout; out != "" {
		t.Errorf("mount points left in the image: %q", out)
	}
	e.MustRun("image", "save", "-o", e.Dir+"/img.tar", "mnt-s")
	for _, name := range layerEntries(t, e.Dir+"/img.tar") {
		switch strings.TrimSuffix(name, "/") {
		case "etc/hosts", "etc/resolv.conf", "etc", "dev", "proc", "sys", "cache", "src", "scratch", "mnt", "run":
			t.Errorf("a layer holds %s, made only for a mount", name)
		}
	}
	if _, err := os.Stat(e.Dir + "/src/written"); err == nil {
		t.Error("a rw bind wrote to the context")
	}
	e.WriteFile("src/in.txt", "in2\n")
	r := e.MustRun("build")
	if n := strings.Count(r.Stderr, "CACHED"); n != 2 {
		t.Errorf("after changing a bind's source, %d steps cached, want 2 (the stage's RUN and the cache RUN):\n%s", n, r.Stderr)
	}
	e.MustRun("down", "-t", "1")
}

// TestBuildInstructions: an image's ONBUILD triggers run when it is a
// base; USER and SHELL apply to RUN; --build-arg overrides compose args;
// ENTRYPOINT drops an inherited CMD; compose labels and dockerfile_inline;
// additional_contexts (a directory, docker-image://, service:) for FROM,
// COPY --from and RUN --mount; a git context is refused.
func TestBuildInstructions(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("compose.yaml", `name: ins
services:
  base:
    image: base:1
    build:
      context: .
      dockerfile_inline: |
        FROM busybox:latest
        ONBUILD RUN echo triggered > /onbuild
        CMD ["inherited"]
  app:
    build:
      context: .
      args:
        WHO: compose
      labels:
        org.example.from-compose: "yes"
      dockerfile_inline: |
        FROM base:1
        ARG WHO=nobody
        SHELL ["/bin/sh", "-ec"]
        USER app
        RUN id -u > /tmp/uid; echo "$$WHO" > /tmp/who
        USER root
        ENTRYPOINT ["cat"]
        HEALTHCHECK --interval=7s --retries=2 CMD ["true"]
    command: ["/onbuild", "/tmp/uid", "/tmp/who"]
    healthcheck:
      disable: true
  named:
    build:
      context: .
      additional_contexts:
        extra: ./extra
        img: docker-image://busybox:latest
        svc: service:base
      dockerfile_inline: |
        FROM svc
        COPY --from=extra e.txt /e.txt
        COPY --from=img /etc/os-release /os-release
        RUN --mount=from=extra,target=/x cat /x/e.txt > /e2.txt
        CMD ["cat", "/e.txt", "/e2.txt", "/onbuild", "/os-release"]
  git:
    build: https://github.com/example/repo.git
    profiles: [never]
`)
	e.WriteFile("extra/e.txt", "extra\n")
	e.MustRun("build", "base")
	e.MustRun("build", "--build-arg", "WHO=flag", "app")
	info := e.MustRun("image", "inspect", "ins-app").Stdout
	for _, w := range []string{"org.example.from-compose", `"Retries": 2`} {
		if !strings.Contains(info, w) {
			t.Errorf("image inspect lacks %s:\n%s", w, info)
		}
	}
	if strings.Contains(info, "inherited") {
		t.Errorf("ENTRYPOINT kept the base's CMD:\n%s", info)
	}
	if strings.Contains(e.MustRun("image", "inspect", "base:1").Stdout, "/onbuild") == false {
		t.Errorf("base:1 lost its ONBUILD trigger")
	}
	e.MustRun("up", "-d", "app")
	e.MustRun("wait", "app")
	if out := e.MustRun("logs", "--no-log-prefix", "app").Stdout; out != "triggered\n1000\nflag\n" {
		t.Errorf("app's output: %q", out)
	}
	e.MustRun("down")
	e.MustRun("build", "named")
	e.MustRun("up", "-d", "named")
	e.MustRun("wait", "named")
	if out := e.MustRun("logs", "--no-log-prefix", "named").Stdout; !strings.HasPrefix(out, "extra\nextra\ntriggered\nNAME=berth-test-busybox") {
		t.Errorf("named contexts: %q", out)
	}
	e.MustRun("down")
	r := e.Run("--profile", "never", "build", "git")
	if r.Code == 0 || !strings.Contains(r.Stderr, "not supported") {
		t.Errorf("a git context: exit %d\n%s", r.Code, r.Stderr)
	}
}

// TestBuildInterrupted: Ctrl-C during a RUN ends the build at once with
// nothing tagged and its container, mounts, cgroup and bridge gone.
func TestBuildInterrupted(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("Dockerfile", "FROM busybox:latest\nRUN echo started && sleep 60\n")
	e.WriteFile("compose.yaml", "name: intr\nservices:\n  s:\n    build: .\n")
	cmd := exec.Command(e.Bin, "build", "--progress", "plain")
	cmd.Dir = e.Dir
	cmd.Env = append(os.Environ(), "BERTH_ROOT="+e.Root, "BERTH_RUN_ROOT="+e.RunRoot)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.HasSuffix(sc.Text(), " started") {
			break
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	if err == nil {
		t.Fatalf("an interrupted build succeeded:\n%s", out.String())
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the build took %v to stop", d)
	}
	if !strings.Contains(out.String(), "build canceled") {
		t.Errorf("output:\n%s", out.String())
	}
	if ls := e.MustRun("image", "ls").Stdout; strings.Contains(ls, "intr-s") {
		t.Errorf("an interrupted build tagged an image:\n%s", ls)
	}
}

// layerEntries lists the entries of the layers above the base in a saved
// image (the base busybox layer, which has etc and dev, is skipped by
// name: its entries include bin/busybox).
func layerEntries(t *testing.T, archive string) []string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = bytes.NewReader(data)
		if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
			r = zr
		}
		lr := tar.NewReader(r)
		var names []string
		base := false
		for {
			lh, err := lr.Next()
			if err != nil {
				break
			}
			names = append(names, lh.Name)
			base = base || lh.Name == "bin/busybox"
		}
		if !base && len(names) > 0 && h.Name != "" {
			out = append(out, names...)
		}
	}
}

// TestBuildPullAndParallel: a missing base image is pulled as `up` pulls
// it; independent stages run at the same time (the second RUN starts
// before the first ends).
func TestBuildPullAndParallel(t *testing.T) {
	reg := testimage.StartRegistry(t)
	img, err := testimage.Busybox(testimage.WithFile("etc/motd", 0o644, "from the registry\n"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push(context.Background(), "team/base:1", img)
	if err != nil {
		t.Fatal(err)
	}
	e := harness.New(t)
	e.WriteFile("Dockerfile", `FROM `+ref+` AS one
RUN sleep 2 && echo one > /one

FROM `+ref+` AS two
RUN sleep 2 && echo two > /two

FROM `+ref+`
COPY --from=one /one /one
COPY --from=two /two /two
CMD ["cat", "/etc/motd", "/one", "/two"]
`)
	e.WriteFile("compose.yaml", "name: par\nservices:\n  s:\n    build: .\n")
	r := e.MustRun("build", "--progress", "plain")
	// Plain progress numbers steps as they start: both RUNs must start
	// before either is done.
	var events []string
	runs := map[string]bool{}
	for _, l := range strings.Split(r.Stderr, "\n") {
		id, rest, _ := strings.Cut(l, " ")
		switch {
		case strings.Contains(rest, "] RUN sleep 2"):
			runs[id] = true
			events = append(events, "start")
		case runs[id] && strings.HasPrefix(rest, "DONE "):
			events = append(events, "done")
		}
	}
	if len(events) < 2 || events[0] != "start" || events[1] != "start" {
		t.Errorf("the independent stages ran one after the other (%v):\n%s", events, r.Stderr)
	}
	e.MustRun("up", "-d")
	e.MustRun("wait", "s")
	if out := e.MustRun("logs", "--no-log-prefix", "s").Stdout; out != "from the registry\none\ntwo\n" {
		t.Errorf("logs: %q", out)
	}
	e.MustRun("down")
}

// TestBuildUpDependencies: `up SERVICE` builds the missing images of the
// services it depends on too; `build SERVICE` alone does not, `build
// --with-dependencies` does.
func TestBuildUpDependencies(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("db/Dockerfile", "FROM busybox:latest\nCMD [\"sleep\", \"3600\"]\n")
	e.WriteFile("web/Dockerfile", "FROM busybox:latest\nCMD [\"sleep\", \"3600\"]\n")
	e.WriteFile("compose.yaml", `name: deps
services:
  web:
    build: ./web
    init: true
    depends_on: [db]
  db:
    build: ./db
    init: true
`)
	r := e.MustRun("build", "web")
	if strings.Contains(r.Stderr, "Service db") {
		t.Errorf("build web built db:\n%s", r.Stderr)
	}
	if r := e.MustRun("build", "--with-dependencies", "web"); !strings.Contains(r.Stderr, "Service db  Built") {
		t.Errorf("build --with-dependencies web did not build db:\n%s", r.Stderr)
	}
	e.MustRun("image", "rm", "deps-db", "deps-web")
	r = e.MustRun("up", "-d", "web")
	if !strings.Contains(r.Stderr, "Service db  Built") || !strings.Contains(r.Stderr, "Service web  Built") {
		t.Errorf("up web did not build both:\n%s", r.Stderr)
	}
	e.MustRun("down", "-t", "1")
}

// TestBuildCopyReuse: a COPY whose sources changed reuses the files of its
// last layer that are still the same, and only those: a file rewritten
// with the same size and its old mtime is copied again, and a COPY --from
// of the result carries the new content too.
func TestBuildCopyReuse(t *testing.T) {
	e := harness.New(t)
	e.LoadImage("busybox:latest")
	e.WriteFile("src/a.txt", "aaaa\n")
	b := e.WriteFile("src/b.txt", "bbbb\n")
	e.WriteFile("src/d/c.txt", "cccc\n")
	e.WriteFile("Dockerfile", `FROM busybox:latest AS build
COPY src/ /ctx/
FROM busybox:latest
COPY --from=build /ctx /app
CMD ["cat", "/app/a.txt", "/app/b.txt", "/app/d/c.txt"]
`)
	e.WriteFile("compose.yaml", "name: reuse\nservices:\n  s:\n    build: .\n")
	run := func() string {
		t.Helper()
		e.MustRun("build")
		return e.MustRun("run", "--rm", "s").Stdout
	}
	if out := run(); out != "aaaa\nbbbb\ncccc\n" {
		t.Fatalf("first build: %q", out)
	}
	fi, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("BBBB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(b, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if out := run(); out != "aaaa\nBBBB\ncccc\n" {
		t.Errorf("after b.txt changed (same size and mtime): %q", out)
	}
	// a.txt is one file shared by both builds' layers of both stages;
	// b.txt was written again, and linked once into the final stage.
	if out := e.MustRun("run", "--rm", "s", "stat", "-c", "%h", "/app/a.txt", "/app/b.txt").Stdout; out != "4\n2\n" {
		t.Errorf("links of a.txt and b.txt: %q, want 4 and 2", out)
	}
	e.WriteFile("src/d/c.txt", "cccccc\n")
	if out := run(); out != "aaaa\nBBBB\ncccccc\n" {
		t.Errorf("after c.txt changed: %q", out)
	}
	e.MustRun("down")
}
