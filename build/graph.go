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
func (d *Dockerfile) plan(lex *shell.Lex, meta *vars) ([]stagePlan, error) {
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
		p.base = base
		if j, ok := d.stageIndex(base, i); ok {
			p.baseStage = j
			p.deps = append(p.deps, j)
		}
		for _, c := range s.Commands {
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
					return nil, d.at(c.Location(), err)
				}
				if j, ok := d.stageIndex(from, i); ok && !containsInt(p.deps, j) {
					p.deps = append(p.deps, j)
				}
			}
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
