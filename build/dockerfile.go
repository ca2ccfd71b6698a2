// Package build turns a Dockerfile and its context into an image in
// berth's store, without a daemon: BuildKit's own parser reads the
// Dockerfile, each stage's steps run on berth's engine (RUN in a container
// confined as `up`'s are, COPY and ADD on an overlay of the stage's
// layers), and each step's result is cached by what it depends on.
package build

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Dockerfile is a parsed Dockerfile: its stages and the ARGs before the
// first FROM.
type Dockerfile struct {
	Name     string // as errors name it, "Dockerfile" by default
	Stages   []instructions.Stage
	MetaArgs []instructions.ArgCommand
	Escape   rune
}

// builtinFrontends are the `# syntax=` values berth's built-in frontend
// stands for; no frontend image is ever pulled.
var builtinFrontends = []string{"docker/dockerfile", "docker.io/docker/dockerfile"}

// checkSyntax accepts a syntax directive naming Docker's Dockerfile
// frontend at version 1, 1.x (any suffix such as -labs) or labs.
func checkSyntax(name string, src []byte) error {
	ref, _, loc, ok := parser.DetectSyntax(src)
	if !ok {
		return nil
	}
	repo, tag, _ := strings.Cut(ref, ":")
	tag, _, _ = strings.Cut(tag, "@")
	supported := false
	for _, f := range builtinFrontends {
		if repo == f {
			supported = tag == "" || tag == "labs" || tag == "1" || strings.HasPrefix(tag, "1.") || strings.HasPrefix(tag, "1-")
		}
	}
	if !supported {
		line := 1
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		return fmt.Errorf("%s:%d: syntax %q: only the built-in frontend (docker/dockerfile:1, 1.x, labs) is supported", name, line, ref)
	}
	return nil
}

// Parse parses a Dockerfile with BuildKit's parser and instruction set.
// Errors name the file and line.
func Parse(name string, src []byte) (*Dockerfile, error) {
	if name == "" {
		name = "Dockerfile"
	}
	if err := checkSyntax(name, src); err != nil {
		return nil, err
	}
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, locate(name, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, locate(name, err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%s: file with no instructions", name)
	}
	return &Dockerfile{Name: name, Stages: stages, MetaArgs: metaArgs, Escape: res.EscapeToken}, nil
}

// locate rewrites a parser error as "NAME:LINE: message", the line taken
// from the error's location when BuildKit attached one.
func locate(name string, err error) error {
	line := 0
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
	}
	var ue *instructions.UnknownInstructionError
	if errors.As(err, &ue) {
		line = ue.Line
	}
	msg := err.Error()
	// instructions.Parse prefixes "dockerfile parse error on line N: ".
	if i := strings.Index(msg, "dockerfile parse error on line "); i >= 0 {
		rest := msg[i+len("dockerfile parse error on line "):]
		var n int
		if _, serr := fmt.Sscanf(rest, "%d:", &n); serr == nil {
			if line == 0 {
				line = n
			}
			if _, after, ok := strings.Cut(rest, ": "); ok {
				msg = after
			}
		}
	}
	if line == 0 {
		return fmt.Errorf("%s: %s", name, msg)
	}
	return fmt.Errorf("%s:%d: %s", name, line, msg)
}

// stageIndex finds a stage by name (case-insensitive, as BuildKit) or
// index, among the stages before `before` (a stage can only use earlier
// ones).
func (d *Dockerfile) stageIndex(ref string, before int) (int, bool) {
	for i := 0; i < before && i < len(d.Stages); i++ {
		if d.Stages[i].Name != "" && strings.EqualFold(d.Stages[i].Name, ref) {
			return i, true
		}
	}
	var n int
	if _, err := fmt.Sscanf(ref, "%d", &n); err == nil && fmt.Sprint(n) == ref && n >= 0 && n < before {
		return n, true
	}
	return 0, false
}

// Target returns the index of the stage named target, or the last stage
// when target is empty.
func (d *Dockerfile) Target(target string) (int, error) {
	if target == "" {
		return len(d.Stages) - 1, nil
	}
	for i, s := range d.Stages {
		if strings.EqualFold(s.Name, target) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("target stage %q could not be found", target)
}

// at prefixes err with the Dockerfile's name and the first line of loc.
func (d *Dockerfile) at(loc []parser.Range, err error) error {
	if len(loc) == 0 {
		return fmt.Errorf("%s: %w", d.Name, err)
	}
	return fmt.Errorf("%s:%d: %w", d.Name, loc[0].Start.Line, err)
}
