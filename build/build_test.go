package build

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/engine/image/unpack"
)

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"ok", "FROM busybox\nRUN true\n", ""},
		{"syntax 1", "# syntax=docker/dockerfile:1\nFROM busybox\n", ""},
		{"syntax 1.4", "# syntax=docker/dockerfile:1.4\nFROM busybox\n", ""},
		{"syntax labs", "# syntax=docker/dockerfile:labs\nFROM busybox\n", ""},
		{"syntax 1-labs", "# syntax=docker.io/docker/dockerfile:1.7-labs\nFROM busybox\n", ""},
		{"other frontend", "# syntax=example.com/fe:1\nFROM busybox\n", "Dockerfile:1: syntax \"example.com/fe:1\""},
		{"unknown instruction", "FROM busybox\n\nFROB x\n", "Dockerfile:3: unknown instruction: FROB"},
		{"bad ENV", "FROM busybox\nENV\n", "Dockerfile:2: ENV requires at least one argument"},
		{"no FROM", "RUN true\n", "Dockerfile:1:"},
		{"empty", "# nothing\n", "file with no instructions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("", []byte(c.src))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestHeredocRun(t *testing.T) {
	df, err := Parse("", []byte("FROM busybox\nRUN <<EOF\necho a\necho b\nEOF\nRUN <<EOF\n#!/bin/sh\necho c\nEOF\nRUN echo x\nRUN [\"echo\", \"y\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"/bin/sh", "-c", "echo a\necho b\n"},
		{"/dev/pipes/EOF"},
		{"/bin/sh", "-c", "echo x"},
		{"echo", "y"},
	}
	for i, c := range df.Stages[0].Commands {
		args, files, err := runArgs(c.(*instructions.RunCommand), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(args, want[i]) {
			t.Errorf("RUN %d: %q, want %q", i, args, want[i])
		}
		if i == 1 && files["EOF"] != "#!/bin/sh\necho c\n" {
			t.Errorf("shebang heredoc file: %q", files)
		}
	}
}

func TestStageSelection(t *testing.T) {
	src := `ARG BASE=alpine
FROM ${BASE} AS base
FROM base AS build
COPY --from=tools /x /x
FROM busybox AS tools
FROM gloursdocker/docker AS unused
COPY --from=build /x /y
FROM scratch AS final
COPY --from=build /x /x
`
	df, err := Parse("", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	lex := shell.NewLex('\\')
	meta, err := metaScope(lex, df.MetaArgs, map[string]string{"BASE": "debian"})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := df.plan(lex, meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plans[0].base != "debian" {
		t.Errorf("FROM ${BASE} with --build-arg: %q", plans[0].base)
	}
	cases := []struct {
		target string
		want   []int
	}{
		{"", []int{0, 1, 4}},
		{"final", []int{0, 1, 4}},
		{"base", []int{0}},
		{"unused", []int{0, 1, 3}},
	}
	for _, c := range cases {
		i, err := df.Target(c.target)
		if err != nil {
			t.Fatal(err)
		}
		if got := needed(plans, i); !reflect.DeepEqual(got, c.want) {
			t.Errorf("target %q: stages %v, want %v", c.target, got, c.want)
		}
	}
	if _, err := df.Target("nope"); err == nil {
		t.Error("an unknown target was accepted")
	}
}

func TestStepKey(t *testing.T) {
	base := stepKey("p", "RUN x", []string{"A=1"})
	cases := []struct {
		name string
		key  string
		same bool
	}{
		{"same inputs", stepKey("p", "RUN x", []string{"A=1"}), true},
		{"parent", stepKey("q", "RUN x", []string{"A=1"}), false},
		{"instruction", stepKey("p", "RUN y", []string{"A=1"}), false},
		{"arg value", stepKey("p", "RUN x", []string{"A=2"}), false},
		{"sources", stepKey("p", "RUN x", []string{"A=1"}, "sources sha256:1"), false},
	}
	for _, c := range cases {
		if (c.key == base) != c.same {
			t.Errorf("%s: same key = %v, want %v", c.name, c.key == base, c.same)
		}
	}
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSourcesDigestAndIgnore(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.txt": "a", "sub/b.txt": "b", "sub/skip.log": "x", ".dockerignore": "*/*.log\n"})
	ign, err := loadIgnore(dir, filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	src := &source{root: dir, context: true, ignore: ign}
	digest := func(pattern string) string {
		t.Helper()
		items, err := src.resolve(pattern)
		if err != nil {
			t.Fatal(err)
		}
		d, err := src.digest(items)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d1 := digest(".")
	writeTree(t, dir, map[string]string{"sub/skip.log": "changed"})
	if d2 := digest("."); d2 != d1 {
		t.Error("an ignored file changed the digest")
	}
	writeTree(t, dir, map[string]string{"sub/b.txt": "B"})
	if d3 := digest("."); d3 == d1 {
		t.Error("a changed file kept the digest")
	}
	if err := os.Chmod(filepath.Join(dir, "a.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d4 := digest("a.txt"); d4 == digest("sub/b.txt") {
		t.Error("different sources, same digest")
	}
	if _, err := src.resolve("sub/skip.log"); err == nil || !strings.Contains(err.Error(), "excluded by .dockerignore") {
		t.Errorf("an ignored source: %v", err)
	}
	if _, err := src.resolve("../x"); err == nil || !strings.Contains(err.Error(), "outside the build context") {
		t.Errorf("a source outside: %v", err)
	}
	items, err := src.resolve("*/*.txt")
	if err != nil || len(items) != 1 || items[0].rel != "sub/b.txt" {
		t.Errorf("wildcard: %v %v", items, err)
	}
}

func TestWriteLayerWhiteouts(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root (mknod, trusted xattrs)")
	}
	upper := t.TempDir()
	writeTree(t, upper, map[string]string{"b/file": "x", "a": "y"})
	if err := unix.Mknod(filepath.Join(upper, "gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(upper, "opq"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(upper, "opq"), unpack.OpaqueXattr, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	var buf1, buf2 bytes.Buffer
	t1, empty, err := image.WriteLayerTar(upper, &buf1)
	if err != nil || empty {
		t.Fatal(err, empty)
	}
	t2, _, _ := image.WriteLayerTar(upper, &buf2)
	if t1.DiffID != t2.DiffID || t1.Size != t2.Size || t1.Content != t2.Content || !bytes.Equal(buf1.Bytes(), buf2.Bytes()) {
		t.Errorf("the same directory gave two tars: %v %v", t1, t2)
	}
	if sum := sha256.Sum256(buf1.Bytes()); t1.DiffID != "sha256:"+hex.EncodeToString(sum[:]) || t1.Size != int64(buf1.Len()) {
		t.Errorf("measured %v, wrote %d bytes", t1, buf1.Len())
	}
	// The step's layer: the tar is its blob, uncompressed.
	if l, _, _, err := writeLayer(upper); err != nil || l.DiffID != t1.DiffID || l.Digest != t1.DiffID || l.Size != t1.Size || l.MediaType != image.UncompressedLayer {
		t.Errorf("writeLayer: %v %v, want the tar %v", l, err, t1)
	}
	tr := tar.NewReader(&buf1)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s has owner names", h.Name)
		}
		names = append(names, h.Name)
	}
	want := []string{"a", "b/", "b/file", ".wh.gone", "opq/", "opq/.wh..wh..opq"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
	if _, _, empty, _ := writeLayer(t.TempDir()); !empty {
		t.Error("an empty directory made a layer")
	}
}

func TestProgress(t *testing.T) {
	var plain, tty bytes.Buffer
	src := []byte("FROM busybox\nCOPY a /a\nRUN echo hi\nRUN false\n")
	for _, p := range []*Progress{NewProgress(&plain), NewTTYProgress(&tty, 60, 20)} {
		p.setSource("Dockerfile", src)
		s := p.begin("[1/3] RUN echo hi", 3)
		s.log("hi")
		s.done()
		p.begin("[2/3] COPY a /a", 2).cached()
		s = p.begin("[3/3] RUN false", 4)
		s.log("oops")
		s.fail(&RunError{Args: []string{"false"}, Code: 1})
		p.finish(errors.New("failed"))
	}
	for _, want := range []string{"#1 [1/3] RUN echo hi\n", "#1 0.", " hi\n#1 DONE ", "#2 CACHED\n", "#3 ERROR: process \"false\" did not complete successfully: exit code: 1\n",
		"------\n > [3/3] RUN false:\n0.", " oops\n------\nDockerfile:4\n--------------------\n   2 |     COPY a /a\n   3 |     RUN echo hi\n   4 | >>> RUN false\n--------------------\n"} {
		if !strings.Contains(plain.String(), want) {
			t.Errorf("plain progress lacks %q:\n%s", want, plain.String())
		}
	}
	// The terminal's last drawing: every step, its time at the right edge.
	out := tty.String()
	last := out[strings.LastIndex(out, "[+] Building"):]
	for _, want := range []string{"(3/3) FINISHED\n", "\x1b[2K => [1/3] RUN echo hi", "\x1b[2K => CACHED [2/3] COPY a /a", "\x1b[2K => ERROR [3/3] RUN false", " > [3/3] RUN false:\n", "oops\n------\nDockerfile:4\n"} {
		if !strings.Contains(last, want) {
			t.Errorf("terminal progress lacks %q:\n%q", want, last)
		}
	}
	for _, l := range strings.Split(last, "\n") {
		if strings.HasPrefix(l, "\x1b[2K => ") && (len(l) != len("\x1b[2K")+59 || !strings.HasSuffix(l, "s")) {
			t.Errorf("tree line not laid out in 60 columns: %q", l)
		}
	}
	if strings.Contains(last, "# 0.") {
		t.Errorf("the last drawing shows a finished step's output:\n%s", last)
	}

	// While a step runs, the tree shows its time and last output lines.
	var live bytes.Buffer
	var mu sync.Mutex
	p := NewTTYProgress(writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return live.Write(b) }), 60, 20)
	s := p.begin("[1/1] RUN sleep", 1)
	s.log("working")
	time.Sleep(350 * time.Millisecond)
	mu.Lock()
	got := live.String()
	mu.Unlock()
	if !strings.Contains(got, "[+] Building 0.") || !strings.Contains(got, "(0/1)") || !strings.Contains(got, " => => # 0.") || !strings.Contains(got, " working") {
		t.Errorf("live tree:\n%q", got)
	}
	s.done()
	p.finish(nil)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func TestStubsLeaveNoTrace(t *testing.T) {
	rootfs, upper := t.TempDir(), t.TempDir()
	writeTree(t, rootfs, map[string]string{"etc/passwd": "root:x:0:0::/:/bin/sh\n"})
	stubs := []string{"/etc/hosts", "/proc", "/run/secrets/x"}
	missing := missingPaths(rootfs, stubs)
	if want := []string{"etc/hosts", "proc", "run", "run/secrets", "run/secrets/x"}; !reflect.DeepEqual(missing, want) {
		t.Errorf("missing %q, want %q", missing, want)
	}
	parents := stubParents(rootfs, stubs)
	// What a RUN leaves: the mount points, etc copied up, and a real file.
	writeTree(t, upper, map[string]string{"etc/hosts": "", "run/secrets/x": "", "kept": "k"})
	if err := os.Mkdir(filepath.Join(upper, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(rootfs, "etc"))
	if err := os.Chmod(filepath.Join(upper, "etc"), fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	dropStubs(upper, missing)
	dropCopiedUp(upper, parents)
	ents, _ := os.ReadDir(upper)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{"kept"}) {
		t.Errorf("upper keeps %q, want only kept", names)
	}
}

func TestHashCache(t *testing.T) {
	dir, cdir := t.TempDir(), t.TempDir()
	writeTree(t, dir, map[string]string{"f": "one"})
	p := filepath.Join(dir, "f")
	sum := func(c *hashCache) string {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.sum(p, fi.Sys().(*syscall.Stat_t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	c := loadHashCache(cdir, dir)
	first := sum(c)
	if err := c.save(); err != nil {
		t.Fatal(err)
	}
	c = loadHashCache(cdir, dir)
	if got := sum(c); got != first || c.dirty {
		t.Errorf("a reloaded cache rehashed an unchanged file (dirty %v)", c.dirty)
	}
	// Same size, mtime put back: ctime still tells.
	fi, _ := os.Stat(p)
	writeTree(t, dir, map[string]string{"f": "two"})
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got := sum(c); got == first {
		t.Error("a changed file kept its cached hash")
	}
}

func TestUsedArgs(t *testing.T) {
	scope := newVars()
	scope.set("VERSION", "1")
	scope.set("V", "2")
	scope.set("OTHER", "3")
	parse := func(line string) instructions.Command {
		t.Helper()
		df, err := Parse("", []byte("FROM x\n"+line+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		return df.Stages[0].Commands[0]
	}
	cases := []struct {
		line string
		want []string
	}{
		{"COPY app-$VERSION.tar /x", []string{"VERSION=1"}},
		{"COPY app-${V}.tar /x", []string{"V=2"}},
		{"COPY app-${V:-0}.tar /x", []string{"V=2"}},
		{"COPY a /x", nil},
		{"ENV X=$VERSIONS", nil},
		{"RUN true", []string{"OTHER=3", "V=2", "VERSION=1"}},
	}
	for _, c := range cases {
		if got := usedArgs(parse(c.line), c.line, scope); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %q, want %q", c.line, got, c.want)
		}
	}
}

// TestShapeSums: a shape record keeps the layer and its files' content
// hashes; a name that cannot be a line is left out (hashed next time).
func TestShapeSums(t *testing.T) {
	c := &cache{dir: t.TempDir()}
	key := "sha256:" + strings.Repeat("ab", 32)
	if _, _, ok := c.shape(key); ok {
		t.Fatal("a shape before any was recorded")
	}
	sums := map[string]string{"app/a.txt": "11", "app/d/b c": "22", "app/tab\there": "33"}
	c.putShape(key, "sha256:"+strings.Repeat("cd", 32), sums)
	d, got, ok := c.shape(key)
	if !ok || d != "sha256:"+strings.Repeat("cd", 32) {
		t.Fatalf("shape: %q %v", d, ok)
	}
	want := map[string]string{"app/a.txt": "11", "app/d/b c": "22"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sums %v, want %v", got, want)
	}
}

// TestLinkerSums: a context COPY's linker keeps the hashes it is told of,
// and none once the step unpacks an archive over what it copied.
func TestLinkerSums(t *testing.T) {
	l := newContextLinker(nil)
	l.recordSum("app/a", "11")
	if got := l.takeSums(); !reflect.DeepEqual(got, map[string]string{"app/a": "11"}) {
		t.Errorf("sums %v", got)
	}
	l.forgetSums()
	l.recordSum("app/b", "22")
	if got := l.takeSums(); got != nil {
		t.Errorf("sums after an archive: %v, want none", got)
	}
	var none *linker
	none.forgetSums()
	none.copied("p", "abs", nil)
	if none.takeSums() != nil {
		t.Error("a nil linker has sums")
	}
}

// TestLaterSourceWins: of two sources of one COPY that write the same
// target, the later one's content stays, even when the earlier one was
// listed as a link (made only after the copy) and the later one is copied.
func TestLaterSourceWins(t *testing.T) {
	src, root := t.TempDir(), t.TempDir()
	for _, d := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, content string) fs.FileInfo {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	first := write(filepath.Join(src, "a", "f"), "first")
	second := write(filepath.Join(src, "b", "f"), "second")
	// An extended attribute keeps the second from being linked.
	if err := unix.Lsetxattr(filepath.Join(src, "b", "f"), "user.keep", []byte("1"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	l := newLinker(src, []string{src})
	l.rootfs = root
	o := copyOpts{uid: uid, gid: gid, link: l}
	target := filepath.Join(root, "f")
	if err := copyAt(target, filepath.Join(src, "a", "f"), first, o); err != nil {
		t.Fatal(err)
	}
	if len(l.links) != 1 {
		t.Fatalf("the first source was not listed as a link: %d links", len(l.links))
	}
	if err := copyAt(target, filepath.Join(src, "b", "f"), second, o); err != nil {
		t.Fatal(err)
	}
	if err := l.apply(root); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "second" {
		t.Errorf("target holds %q, want the later source's %q", got, "second")
	}
}

// A file dated before 1970 (a negative mtime) stays cached across loads.
func TestHashCacheOldFile(t *testing.T) {
	dir, cdir := t.TempDir(), t.TempDir()
	writeTree(t, dir, map[string]string{"f": "one"})
	p := filepath.Join(dir, "f")
	old := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	c := loadHashCache(cdir, dir)
	if _, err := c.sum(p, st); err != nil {
		t.Fatal(err)
	}
	if err := c.save(); err != nil {
		t.Fatal(err)
	}
	c = loadHashCache(cdir, dir)
	if _, err := c.sum(p, st); err != nil || c.dirty {
		t.Errorf("a reloaded cache rehashed a file of 1960 (dirty %v, err %v)", c.dirty, err)
	}
}

func TestParseDecimal(t *testing.T) {
	for _, s := range []string{"0", "7", "1796165471369213000", "9223372036854775807", "18446744073709551615"} {
		want, werr := strconv.ParseUint(s, 10, 64)
		got, err := parseUint([]byte(s))
		if got != want || (err == nil) != (werr == nil) {
			t.Errorf("parseUint(%q) = %d, %v; want %d, %v", s, got, err, want, werr)
		}
	}
	for _, s := range []string{"0", "-1", "-315619200000000000", "9223372036854775807", "9999999999999999999", "", "1x"} {
		want, werr := strconv.ParseInt(s, 10, 64)
		got, err := parseInt([]byte(s))
		if got != want || (err == nil) != (werr == nil) {
			t.Errorf("parseInt(%q) = %d, %v; want %d, %v", s, got, err, want, werr)
		}
	}
}

// The walk's lstat relative to a directory says what os.Lstat says.
func TestDirStatterMatchesLstat(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"f": "one", "sub/g": "two"})
	if err := os.Symlink("f", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "p"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "f"), 0o4755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "sub"), 0o1777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	var d dirStatter
	defer d.Close()
	for _, name := range []string{"f", "l", "p", "sub", "sub/g", "missing"} {
		p := filepath.Join(dir, name)
		want, werr := os.Lstat(p)
		got, err := d.lstat(p)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%s: err %v, os.Lstat's %v", name, err, werr)
		}
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: %v is not ErrNotExist", name, err)
			}
			continue
		}
		if got.Name() != want.Name() || got.Mode() != want.Mode() || got.Size() != want.Size() || !got.ModTime().Equal(want.ModTime()) || got.IsDir() != want.IsDir() {
			t.Errorf("%s: %s %v %d %v, os.Lstat: %s %v %d %v", name, got.Name(), got.Mode(), got.Size(), got.ModTime(), want.Name(), want.Mode(), want.Size(), want.ModTime())
		}
		if *got.Sys().(*syscall.Stat_t) != *want.Sys().(*syscall.Stat_t) {
			t.Errorf("%s: Sys differs", name)
		}
	}
}
