package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/berthrun/berth/project"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

// attachSelection is the services an attached `up` follows, by compose's
// rules: the services named (all when none), their dependencies only with
// --attach-dependencies; --attach narrows the set, --no-attach removes
// from it.
func attachSelection(p *project.Project, args []string, f *upFlags) ([]string, error) {
	if err := checkServices(p, f.attach); err != nil {
		return nil, err
	}
	if err := checkServices(p, f.noAttach); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	if len(f.attach) > 0 {
		for _, s := range f.attach {
			set[s] = true
		}
	} else if len(args) == 0 {
		for name := range p.Services {
			set[name] = true
		}
	} else {
		var add func(string)
		add = func(s string) {
			if set[s] {
				return
			}
			set[s] = true
			if f.attachDependencies {
				for dep := range p.Services[s].DependsOn {
					if _, ok := p.Services[dep]; ok {
						add(dep)
					}
				}
			}
		}
		for _, s := range args {
			add(s)
		}
	}
	for _, s := range f.noAttach {
		delete(set, s)
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}

// printAttaching prints compose's "Attaching to ..." line for the
// containers of services.
func printAttaching(w io.Writer, g *globals, proj string, services []string) {
	recs, err := supervisor.LoadRecords(g.paths(), proj)
	if err != nil {
		return
	}
	want := map[string]bool{}
	for _, s := range services {
		want[s] = true
	}
	var names []string
	for _, r := range recs {
		if want[r.Service] && r.Labels[model.LabelOneoff] != "True" {
			names = append(names, shortName(r))
		}
	}
	if len(names) > 0 {
		fmt.Fprintf(w, "Attaching to %s\n", strings.Join(names, ", "))
	}
}

// exitLine is compose's line for a container that exited while attached.
func exitLine(r supervisor.Record) string {
	return fmt.Sprintf("%s exited with code %d\n", shortName(&r), r.State.ExitCode)
}
