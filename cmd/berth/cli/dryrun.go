package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/netmgr"
	"github.com/berthrun/berth/project"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
	"github.com/berthrun/berth/volmgr"
)

// dryRunSteps are the commands --dry-run covers, with the steps each would
// take for a container, as compose's progress names them.
var dryRunSteps = map[string][]string{
	"up": {"Starting", "Started"}, "create": nil, "start": {"Starting", "Started"},
	"stop": {"Stopping", "Stopped"}, "restart": {"Restarting", "Restarted"},
	"kill": {"Killing", "Killed"}, "rm": {"Removing", "Removed"},
	"down": {"Stopping", "Stopped", "Removing", "Removed"},
	"pull": {"Pulling", "Pulled"}, "build": {"Building", "Built"},
}

// withDryRun makes the commands --dry-run covers print what they would do
// instead of doing it. It reads the compose file and the state on disk
// only: no supervisor is started or asked anything, and nothing is created,
// not even a state directory.
func withDryRun(root *cobra.Command, g *globals) {
	for _, c := range root.Commands() {
		if _, ok := dryRunSteps[c.Name()]; !ok || c.RunE == nil {
			continue
		}
		run := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if !g.dryRun {
				return run(cmd, args)
			}
			return dryRun(cmd, g, args)
		}
	}
}

// dryRunPlan collects the lines of a dry run.
type dryRunPlan struct{ lines []string }

// add records kind name going through each of steps in turn.
func (d *dryRunPlan) add(kind, name string, steps ...string) {
	for _, s := range steps {
		d.lines = append(d.lines, fmt.Sprintf("DRY-RUN MODE -  %s %s  %s", kind, name, s))
	}
}

func dryRun(cmd *cobra.Command, g *globals, args []string) (err error) {
	op := cmd.Name()
	proj, p, err := g.projectName(cmd.Context())
	if err != nil {
		return err
	}
	if op != "down" {
		if err := checkServices(p, args); err != nil {
			return err
		}
	}
	services := args
	if len(services) == 0 && p != nil {
		services = p.ServiceNames()
	}
	sort.Strings(services)
	var plan dryRunPlan
	defer func() {
		if err != nil {
			return // one line of error, as ever
		}
		for _, l := range plan.lines {
			fmt.Fprintln(cmd.ErrOrStderr(), l)
		}
	}()
	switch op {
	case "pull", "build":
		if p == nil {
			return nil
		}
		for _, n := range services {
			svc := p.Services[n]
			if op == "pull" && svc.Image != "" || op == "build" && svc.Build != nil {
				plan.add("Service", n, dryRunSteps[op]...)
			}
		}
		return nil
	}
	recs, err := supervisor.LoadRecords(g.paths(), proj)
	if err != nil {
		return err
	}
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].Service != recs[j].Service {
			return recs[i].Service < recs[j].Service
		}
		return recs[i].Number < recs[j].Number
	})
	var m *model.Model
	if p != nil {
		if m, err = g.model(p); err != nil {
			return err
		}
	}
	switch op {
	case "up", "create":
		if m == nil {
			return nil
		}
		if err := dryRunImages(cmd, g, &plan, p, services); err != nil {
			return err
		}
		return dryRunUp(cmd, g, &plan, m, recs, services, op == "up")
	case "down":
		return dryRunDown(cmd, g, &plan, p, m, recs)
	}
	for _, r := range recs {
		if r.Labels[model.LabelOneoff] == "True" || len(args) > 0 && !slices.Contains(services, r.Service) {
			continue
		}
		steps := dryRunSteps[op]
		up := r.State.Status == supervisor.StatusRunning || r.State.Status == supervisor.StatusPaused
		switch {
		case op == "start" && up:
			steps = []string{"Running"}
		case (op == "stop" || op == "kill") && !up:
			continue
		case op == "rm" && up:
			// rm leaves running containers alone unless -s stops them.
			if stop, _ := cmd.Flags().GetBool("stop"); !stop {
				continue
			}
			steps = append([]string{"Stopping", "Stopped"}, steps...)
		}
		plan.add("Container", r.Name, steps...)
	}
	return nil
}

// dryRunImages lists the images up would build or pull first, by each
// service's pull_policy (--pull overrides it): those the store lacks, and
// every one under "always"; a service with build: is built, the others
// pulled.
func dryRunImages(cmd *cobra.Command, g *globals, plan *dryRunPlan, p *project.Project, services []string) error {
	pull, _ := cmd.Flags().GetString("pull")
	if err := applyPullFlag(p, pull); err != nil {
		return err
	}
	var store *image.Store
	if _, err := os.Stat(g.paths().ImageRoot()); err == nil {
		store, _ = g.openImageStore()
	}
	has := func(ref string) bool {
		if store == nil || ref == "" {
			return false
		}
		_, err := store.Image(ref)
		return err == nil
	}
	for _, n := range services {
		svc := p.Services[n]
		switch {
		case svc.PullPolicy == types.PullPolicyAlways && svc.Image != "":
			plan.add("Service", n, "Pulling", "Pulled")
		case svc.PullPolicy == types.PullPolicyBuild && svc.Build != nil:
			plan.add("Service", n, "Building", "Built")
		case has(p.ImageName(svc)) || svc.PullPolicy == types.PullPolicyNever:
		case svc.Build != nil:
			plan.add("Service", n, "Building", "Built")
		default:
			plan.add("Service", n, "Pulling", "Pulled")
		}
	}
	return nil
}

// dryRunUp lists what up (or create, without start) would do: the
// networks and volumes it would create, then each replica created,
// recreated, started or left running.
func dryRunUp(cmd *cobra.Command, g *globals, plan *dryRunPlan, m *model.Model, recs []*supervisor.Record, services []string, start bool) error {
	scales := map[string]int{}
	if cmd.Flags().Lookup("scale") != nil {
		vals, _ := cmd.Flags().GetStringArray("scale")
		for _, v := range vals {
			name, n, ok := strings.Cut(v, "=")
			if k, err := strconv.Atoi(n); ok && err == nil && k >= 0 {
				scales[name] = k
			}
		}
	}
	nets, vols := map[string]bool{}, map[string]bool{}
	for _, name := range services {
		svc, _ := m.Service(name)
		for _, a := range svc.Networks {
			if n, ok := m.Networks[a.Key]; ok && !n.External && !nets[n.Name] {
				nets[n.Name] = true
				if !g.networkExists(n.Name) {
					plan.add("Network", n.Name, "Creating", "Created")
				}
			}
		}
		for _, v := range svc.Volumes {
			vol, ok := m.Volumes[v.Source]
			if v.Type != "volume" || !ok || vol.External || vols[vol.Name] {
				continue
			}
			vols[vol.Name] = true
			if !g.volumeExists(vol.Name) {
				plan.add("Volume", strconv.Quote(vol.Name), "Creating", "Created")
			}
		}
	}
	for _, name := range services {
		svc, _ := m.Service(name)
		want := svc.Replicas
		if n, ok := scales[name]; ok {
			want = n
		}
		have := map[int]*supervisor.Record{}
		for _, r := range recs {
			if r.Service == name && r.Labels[model.LabelOneoff] != "True" {
				have[r.Number] = r
			}
		}
		for n := 1; n <= want; n++ {
			r, ok := have[n]
			cname := model.ContainerName(m.Name, svc, n)
			if ok {
				cname = r.Name
			}
			switch {
			case !ok:
				plan.add("Container", cname, "Creating", "Created")
			case r.Hash != svc.Hash:
				plan.add("Container", r.Name, "Recreate", "Recreated")
			case r.State.Status == supervisor.StatusRunning:
				plan.add("Container", r.Name, "Running")
				continue
			}
			if start {
				plan.add("Container", cname, "Starting", "Started")
			}
		}
		for n, r := range have {
			if n > want {
				plan.add("Container", r.Name, "Stopping", "Stopped", "Removing", "Removed")
			}
		}
	}
	return nil
}

// dryRunDown lists what down would remove: every container of the project,
// its networks, with -v its named volumes, with --rmi its images, when they
// exist.
func dryRunDown(cmd *cobra.Command, g *globals, plan *dryRunPlan, p *project.Project, m *model.Model, recs []*supervisor.Record) error {
	rmi, _ := cmd.Flags().GetString("rmi")
	switch rmi {
	case "", "local", "all":
	default:
		return fmt.Errorf("invalid value for --rmi: %q", rmi)
	}
	for _, r := range recs {
		if r.State.Status == supervisor.StatusRunning || r.State.Status == supervisor.StatusPaused {
			plan.add("Container", r.Name, "Stopping", "Stopped")
		}
		plan.add("Container", r.Name, "Removing", "Removed")
	}
	if m == nil {
		return nil
	}
	if v, _ := cmd.Flags().GetBool("volumes"); v {
		for _, key := range sortedKeys(m.Volumes) {
			if vol := m.Volumes[key]; !vol.External && g.volumeExists(vol.Name) {
				plan.add("Volume", vol.Name, "Removing", "Removed")
			}
		}
	}
	for _, key := range sortedKeys(m.Networks) {
		if n := m.Networks[key]; !n.External && g.networkExists(n.Name) {
			plan.add("Network", n.Name, "Removing", "Removed")
		}
	}
	if rmi == "" {
		return nil
	}
	if _, err := os.Stat(g.paths().ImageRoot()); err != nil {
		return nil
	}
	store, err := g.openImageStore()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, name := range p.ServiceNames() {
		svc := p.Services[name]
		ref := p.ImageName(svc)
		if rmi == "local" && (svc.Image != "" || svc.Build == nil) || ref == "" || seen[ref] {
			continue
		}
		seen[ref] = true
		if _, err := store.Image(ref); err == nil {
			plan.add("Image", ref, "Removing", "Removed")
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// networkExists says whether berth has a network of that name, without
// creating the state directory when there is none.
func (g *globals) networkExists(name string) bool {
	dir := g.paths().NetworkDir()
	if _, err := os.Stat(filepath.Join(dir, "networks")); err != nil {
		return false
	}
	nm, err := netmgr.New(dir)
	if err != nil {
		return false
	}
	_, err = nm.Network(name)
	return err == nil
}

// volumeExists says whether berth has a volume of that name, without
// creating the volume root when there is none.
func (g *globals) volumeExists(name string) bool {
	root := g.paths().VolumeRoot()
	if _, err := os.Stat(root); err != nil {
		return false
	}
	vm, err := volmgr.New(root)
	if err != nil {
		return false
	}
	_, err = vm.Inspect(name)
	return err == nil
}
