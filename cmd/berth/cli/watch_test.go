package cli

import (
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/patternmatcher"
)

func TestTriggerMatch(t *testing.T) {
	ignore, _ := patternmatcher.New(append(append([]string{}, defaultIgnores...), "*.tmp", "cache/"))
	include, _ := patternmatcher.New([]string{"*.js"})
	docker, _ := patternmatcher.New([]string{"app/secret"})
	plain := &trigger{Trigger: types.Trigger{Path: "/src"}, ignore: ignore}
	only := &trigger{Trigger: types.Trigger{Path: "/src"}, ignore: ignore, include: include}
	ctx := &trigger{Trigger: types.Trigger{Path: "/src/app"}, ignore: ignore, context: "/src", dockerignore: docker}
	tests := []struct {
		name string
		t    *trigger
		path string
		dir  bool
		rel  string
		ok   bool
	}{
		{"root", plain, "/src", true, ".", true},
		{"file", plain, "/src/a/b.txt", false, "a/b.txt", true},
		{"outside", plain, "/srcx/a", false, "", false},
		{"parent", plain, "/", true, "", false},
		{"ignored pattern", plain, "/src/x.tmp", false, "", false},
		{"ignored directory", plain, "/src/cache/y", false, "", false},
		{"git", plain, "/src/sub/.git/HEAD", false, "", false},
		{"editor swap", plain, "/src/.a.txt.swp", false, "", false},
		{"include", only, "/src/sub/app.js", false, "sub/app.js", true},
		{"not included", only, "/src/app.css", false, "", false},
		{"directory under include", only, "/src/sub", true, "sub", true},
		{"dockerignore", ctx, "/src/app/x", false, "x", true},
		{"dockerignored", ctx, "/src/app/secret", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rel, ok := tt.t.match(tt.path, tt.dir)
			if rel != tt.rel || ok != tt.ok {
				t.Errorf("match(%q) = %q, %v; want %q, %v", tt.path, rel, ok, tt.rel, tt.ok)
			}
		})
	}
}
