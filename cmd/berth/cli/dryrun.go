package cli

import (
	"fmt"
	"slices"
	"sort"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

// dryRunSteps are the commands --dry-run covers, with the step each would
// reach for a container.
var dryRunSteps = map[string]string{
	"up": "Started", "start": "Started", "stop": "Stopped", "restart": "Restarted",
	"kill": "Killed", "rm": "Removed", "down": "Removed", "pull": "Pulled", "build": "Built",
}

// withDryRun makes the commands --dry-run covers print what they would do
// instead of doing it. It reads the compose file and the records on disk
// only: no supervisor is started or asked anything.
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

func dryRun(cmd *cobra.Command, g *globals, args []string) error {
	op := cmd.Name()
	step := dryRunSteps[op]
	proj, p, err := g.projectName(cmd.Context())
	if err != nil {
		return err
	}
	if op != "down" {
		if err := checkServices(p, args); err != nil {
			return err
		}
	}
	out := cmd.ErrOrStderr()
	line := func(kind, name, what string) {
		fmt.Fprintf(out, "DRY-RUN MODE -  %s %s  %s\n", kind, name, what)
	}
	services := args
	if len(services) == 0 && p != nil {
		services = p.ServiceNames()
	}
	sort.Strings(services)
	switch op {
	case "pull", "build":
		if p == nil {
			return nil
		}
		for _, n := range services {
			svc := p.Services[n]
			if op == "pull" && svc.Image != "" || op == "build" && svc.Build != nil {
				line("Service", n, step)
			}
		}
		return nil
	}
	recs, err := supervisor.LoadRecords(g.paths(), proj)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, r := range recs {
		if r.Labels[model.LabelOneoff] == "True" || op != "down" && len(services) > 0 && !slices.Contains(services, r.Service) {
			continue
		}
		have[r.Service] = true
		line("Container", r.Name, step)
	}
	if op == "up" && p != nil {
		// Services without a container yet would get their first one.
		for _, n := range services {
			if !have[n] {
				line("Container", fmt.Sprintf("%s-%s-1", proj, n), "Created")
				line("Container", fmt.Sprintf("%s-%s-1", proj, n), step)
			}
		}
	}
	if op == "down" && p != nil {
		for _, key := range p.NetworkNames() {
			line("Network", p.NetworkName(key), "Removed")
		}
	}
	return nil
}
