package build

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// stagePlan is a stage as the graph sees it: where it starts from and the
// earlier stages it reads.
type stagePlan struct {
	index     int
	name      string // for progress: the stage's name, or "stage-N"
	base      string // FROM, expanded: an image reference or "scratch"
	baseStage int    // the stage FROM names, or -1
	deps      []int  // stages this one needs (base, COPY --from, RUN --mount from=)
}

// plan expands every stage's FROM with the global ARGs and finds what each
// stage depends on.
// Named contexts (compose additional_contexts) win over stage names: a
// FROM naming an image context uses that image, and COPY --from or a
// mount naming one depends on no stage.
func (d *Dockerfile) plan(lex *shell.Lex, meta *vars, named map[string]string) ([]stagePlan, error) {
	plans := make([]stagePlan, len(d.Stages))
	for i, s := range d.Stages {
		p := stagePlan{index: i, name: s.Name, baseStage: -1}
		if p.name == "" {
			p.name = fmt.Sprintf("stage-%d", i)
		}
		base, _, err := lex.ProcessWord(s.BaseName, meta)
		if err != nil {
			return nil, d.at(s.Location, fmt.Errorf("FROM %s: %w", s.BaseName, err))
		}
		if base == "" {
			return nil, d.at(s.Location, fmt.Errorf("FROM %q: base name expands to an empty string", s.BaseName))
		}
		if s.Platform != "" {
			pl, _, err := lex.ProcessWord(s.Platform, meta)
			if err != nil {
				return nil, d.at(s.Location, err)
			}
			if pl != Platform && pl != "linux/amd64/v1" {
				return nil, d.at(s.Location, fmt.Errorf("FROM --platform=%s: berth builds for %s only", pl, Platform))
			}
		}
		if v, ok := named[base]; ok {
			ref, isImage := strings.CutPrefix(v, imageContextPrefix)
			if !isImage {
				return nil, d.at(s.Location, fmt.Errorf("FROM %s: a directory context cannot be a base", base))
			}
			p.base = ref
			for _, c := range s.Commands {
				p.deps = appendDeps(d, lex, meta, named, c, i, p.deps)
			}
			plans[i] = p
			continue
		}
		p.base = base
		if j, ok := d.stageIndex(base, i); ok {
			p.baseStage = j
			p.deps = append(p.deps, j)
		}
		for _, c := range s.Commands {
			p.deps = appendDeps(d, lex, meta, named, c, i, p.deps)
		}
		plans[i] = p
	}
	return plans, nil
}

// needed returns the stages target depends on, itself included, in
// ascending order: the only ones a build of target touches.
func needed(plans []stagePlan, target int) []int {
	seen := map[int]bool{}
	var visit func(int)
	visit = func(i int) {
		if seen[i] {
			return
		}
		seen[i] = true
		for _, d := range plans[i].deps {
			visit(d)
		}
	}
	visit(target)
	out := make([]int, 0, len(seen))
	for i := range seen {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

// isScratch reports whether a base name is the empty image.
func isScratch(base string) bool { return strings.EqualFold(base, "scratch") }

// imageContextPrefix marks a named context that is an image.
const imageContextPrefix = "docker-image://"

// appendDeps adds the earlier stages a COPY --from or RUN --mount from=
// reads to deps.
func appendDeps(d *Dockerfile, lex *shell.Lex, meta *vars, named map[string]string, c instructions.Command, i int, deps []int) []int {
	var refs []string
	switch c := c.(type) {
	case *instructions.CopyCommand:
		refs = append(refs, c.From)
	case *instructions.RunCommand:
		for _, m := range instructions.GetMounts(c) {
			refs = append(refs, m.From)
		}
	}
	for _, ref := range refs {
		if ref == "" {
			continue
		}
		from, _, err := lex.ProcessWord(ref, meta)
		if err != nil {
			from = ref // the step reports it when it runs
		}
		if _, ok := named[from]; ok {
			continue
		}
		if j, ok := d.stageIndex(from, i); ok && !containsInt(deps, j) {
			deps = append(deps, j)
		}
	}
	return deps
}
