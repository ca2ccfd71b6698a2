package build

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

func TestResolveParentsAndExclude(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"a/b/c.txt", "a/b/d.md", "a/e.txt", "x/y/z.txt", "x/y/w/v.txt", "top.txt", "notes.md"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := &source{root: root, context: true}
	md, err := newExclude([]string{"*.md", "**/*.md"}, func(s string) (string, error) { return s, nil })
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		sources []string
		parents bool
		want    []string // rel -> dest
	}{
		{"parents keeps the path", []string{"a/b/c.txt"}, true, []string{"a/b/c.txt>a/b/c.txt"}},
		{"pivot", []string{"x/./y/z.txt"}, true, []string{"x/y/z.txt>y/z.txt"}},
		{"wildcard below", []string{"a/*/c.txt", "x/**/v.txt"}, true, []string{"a/b/c.txt>a/b/c.txt", "x/y/w/v.txt>x/y/w/v.txt"}},
		{"a directory", []string{"x/./y"}, true, []string{"x/y>y"}},
		{"wildcard matching nothing", []string{"nope/*.txt"}, true, nil},
		{"exclude a wildcard match", []string{"*"}, false, []string{"a>", "top.txt>", "x>"}},
		{"parents and exclude", []string{"a/./*"}, true, []string{"a/b>b", "a/e.txt>e.txt"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var items []item
			var err error
			if c.parents {
				items, err = resolveParents(src, c.sources, md)
			} else {
				items, err = resolveSources(src, c.sources, md)
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range items {
				got = append(got, it.rel+">"+it.dest)
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	if _, err := resolveParents(src, []string{"a/missing.txt"}, nil); err == nil {
		t.Error("a missing --parents source without wildcards was accepted")
	}
	if _, err := resolveParents(src, []string{"../x"}, nil); err == nil {
		t.Error("a --parents source outside the context was accepted")
	}
	// What --exclude leaves out below a directory neither keys nor is copied.
	items, err := resolveSources(src, []string{"a"}, md)
	if err != nil {
		t.Fatal(err)
	}
	var walked []string
	if err := src.walk(items[0], func(_, sub string, _ os.FileInfo) error { walked = append(walked, sub); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "b", "b/c.txt", "e.txt"}; !reflect.DeepEqual(walked, want) {
		t.Errorf("walk with --exclude: %v, want %v", walked, want)
	}
	d1, _ := src.digest(items)
	if err := os.WriteFile(filepath.Join(root, "a/b/d.md"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d2, _ := src.digest(items); d1 != d2 {
		t.Error("changing an excluded file changed the sources' digest")
	}
}

func TestURLNames(t *testing.T) {
	for u, want := range map[string]string{
		"http://h/f/app.tar.gz":     "app.tar.gz",
		"http://h/f/app.tar.gz?x=1": "app.tar.gz",
		"http://h/":                 "__unnamed__",
		"http://h":                  "__unnamed__",
	} {
		if got := urlFileName(u); got != want {
			t.Errorf("urlFileName(%q) = %q, want %q", u, got, want)
		}
	}
	for s, want := range map[string]bool{
		"git@github.com:a/b.git":          true,
		"https://github.com/a/b.git":      true,
		"https://github.com/a/b.git#main": true,
		"git://h/r":                       true,
		"https://h/file.tar":              false,
		"local/dir":                       false,
	} {
		if got := isGitSource(s); got != want {
			t.Errorf("isGitSource(%q) = %v", s, got)
		}
	}
}

// TestWalkMemo: a walk that keeps what it found hands the same entries, in
// the same order and with the same stat, to the next walk of the item,
// without reading the tree again; one of more than a batch included.
func TestWalkMemo(t *testing.T) {
	root := t.TempDir()
	for i := range walkBatch + 10 {
		p := filepath.Join(root, "d", fmt.Sprintf("s%d", i%3), fmt.Sprintf("f%04d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := &source{root: root, context: true}
	items, err := resolveSources(src, []string{"d"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	items[0].walked = &walkMemo{}
	list := func() []string {
		var out []string
		if err := src.walk(items[0], func(abs, sub string, fi os.FileInfo) error {
			out = append(out, fmt.Sprintf("%s %s %v %d", abs, sub, fi.Mode(), fi.Size()))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := list()
	if len(first) != walkBatch+10+4 || !items[0].walked.done {
		t.Fatalf("first walk: %d entries, kept %v", len(first), items[0].walked.done)
	}
	if err := os.RemoveAll(filepath.Join(root, "d", "s1")); err != nil {
		t.Fatal(err)
	}
	if again := list(); !reflect.DeepEqual(again, first) {
		t.Errorf("second walk differs: %d entries, want %d", len(again), len(first))
	}
}
