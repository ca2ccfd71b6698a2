package build

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Platform is the only platform berth builds for (and runs).
const Platform = "linux/amd64"

// builtinArgs are BuildKit's predefined platform ARGs: usable in FROM lines
// without a declaration, and inside a stage once declared with `ARG NAME`.
var builtinArgs = map[string]string{
	"BUILDPLATFORM":  Platform,
	"BUILDOS":        "linux",
	"BUILDARCH":      "amd64",
	"BUILDVARIANT":   "",
	"TARGETPLATFORM": Platform,
	"TARGETOS":       "linux",
	"TARGETARCH":     "amd64",
	"TARGETVARIANT":  "",
}

// vars is an ordered set of variables that shell.Lex can expand from.
type vars struct {
	keys []string
	vals map[string]string
}

func newVars() *vars { return &vars{vals: map[string]string{}} }

func (v *vars) set(k, val string) {
	if _, ok := v.vals[k]; !ok {
		v.keys = append(v.keys, k)
	}
	v.vals[k] = val
}

func (v *vars) Get(k string) (string, bool) { val, ok := v.vals[k]; return val, ok }
func (v *vars) Keys() []string              { return append([]string(nil), v.keys...) }

// clone copies v so that a stage can add to it.
func (v *vars) clone() *vars {
	c := newVars()
	for _, k := range v.keys {
		c.set(k, v.vals[k])
	}
	return c
}

// sorted returns "k=v" pairs in key order: the part of a cache key that
// stands for the build args in scope.
func (v *vars) sorted() []string {
	out := make([]string, 0, len(v.keys))
	for _, k := range v.keys {
		out = append(out, k+"="+v.vals[k])
	}
	sort.Strings(out)
	return out
}

// overlay returns a getter where env entries ("K=V") win over v, as an ENV
// wins over an ARG of the same name.
func (v *vars) overlay(env []string) *vars {
	c := v.clone()
	for _, kv := range env {
		k, val, _ := strings.Cut(kv, "=")
		c.set(k, val)
	}
	return c
}

// metaScope evaluates the ARGs before the first FROM: their defaults, or
// the values given with --build-arg. The predefined platform ARGs are in
// scope too.
func metaScope(lex *shell.Lex, metaArgs []instructions.ArgCommand, buildArgs map[string]string) (*vars, error) {
	scope := newVars()
	for k, v := range builtinArgs {
		scope.set(k, v)
	}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			val, err := argValue(lex, kv, scope, buildArgs, scope)
			if err != nil {
				return nil, err
			}
			scope.set(kv.Key, val)
		}
	}
	return scope, nil
}

// argValue is what an ARG declaration yields: the build arg when given,
// else its default expanded in env, else a predefined or global value
// (meta), else empty.
func argValue(lex *shell.Lex, kv instructions.KeyValuePairOptional, env *vars, buildArgs map[string]string, meta *vars) (string, error) {
	if v, ok := buildArgs[kv.Key]; ok {
		return v, nil
	}
	if kv.Value != nil {
		v, _, err := lex.ProcessWord(*kv.Value, env)
		if err != nil {
			return "", fmt.Errorf("ARG %s: %w", kv.Key, err)
		}
		return v, nil
	}
	if meta != nil {
		if v, ok := meta.Get(kv.Key); ok {
			return v, nil
		}
	}
	return "", nil
}
