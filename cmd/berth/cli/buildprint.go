package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berthrun/berth/internal/version"
	"github.com/berthrun/berth/project"
)

// bakeFile is the build definition `build --print` writes, in the shape
// docker compose prints (buildx bake's JSON): a default group naming the
// targets to build, and one target per service with a build section.
type bakeFile struct {
	Group  map[string]bakeGroup  `json:"group"`
	Target map[string]bakeTarget `json:"target"`
}

type bakeGroup struct {
	Targets []string `json:"targets"`
}

type bakeTarget struct {
	Context          string            `json:"context,omitempty"`
	Contexts         map[string]string `json:"contexts,omitempty"`
	Dockerfile       string            `json:"dockerfile,omitempty"`
	DockerfileInline string            `json:"dockerfile-inline,omitempty"`
	Args             map[string]string `json:"args,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	Tags             []string          `json:"tags,omitempty"`
	CacheFrom        []string          `json:"cache-from,omitempty"`
	CacheTo          []string          `json:"cache-to,omitempty"`
	Target           string            `json:"target,omitempty"`
	Secrets          []string          `json:"secret,omitempty"`
	SSH              []string          `json:"ssh,omitempty"`
	Platforms        []string          `json:"platforms,omitempty"`
	Pull             bool              `json:"pull,omitempty"`
	NoCache          bool              `json:"no-cache,omitempty"`
	NetworkMode      string            `json:"network,omitempty"`
	NoCacheFilter    []string          `json:"no-cache-filter,omitempty"`
	ShmSize          types.UnitBytes   `json:"shm-size,omitempty"`
	Ulimits          []string          `json:"ulimits,omitempty"`
	Entitlements     []string          `json:"entitlements,omitempty"`
	ExtraHosts       map[string]string `json:"extra-hosts,omitempty"`
	Outputs          []string          `json:"output,omitempty"`
}

// printBuild writes the build definition of the project's services with
// a build section; build names those to build. Nothing is built.
func printBuild(w io.Writer, p *project.Project, build []string, f *buildFlags) error {
	buildArgs, err := parseBuildArgs(f.buildArgs)
	if err != nil {
		return err
	}
	out := bakeFile{Group: map[string]bakeGroup{}, Target: map[string]bakeTarget{}}
	names := bakeTargetNames(p)
	for name, svc := range p.Services {
		b := svc.Build
		if b == nil {
			continue
		}
		t := bakeTarget{
			Context:          b.Context,
			Dockerfile:       bakeDockerfile(b.Context, b.Dockerfile),
			DockerfileInline: strings.ReplaceAll(b.DockerfileInline, "${", "$${"),
			Labels:           buildLabels(p, svc),
			Tags:             append(append([]string(nil), b.Tags...), p.ImageName(svc)),
			CacheFrom:        b.CacheFrom,
			CacheTo:          b.CacheTo,
			Target:           b.Target,
			Platforms:        b.Platforms,
			Pull:             b.Pull || f.pull,
			NoCache:          b.NoCache || f.noCache,
			NetworkMode:      b.Network,
			NoCacheFilter:    b.NoCacheFilter,
			ShmSize:          b.ShmSize,
			Entitlements:     b.Entitlements,
			Outputs:          []string{"type=docker"},
		}
		args := map[string]string{}
		for k, v := range b.Args {
			switch {
			case v != nil:
				args[k] = *v
			default:
				if ev, ok := p.Environment[k]; ok {
					args[k] = ev
				}
			}
		}
		for k, v := range buildArgs {
			args[k] = v
		}
		for k, v := range args {
			args[k] = strings.ReplaceAll(v, "${", "$${")
		}
		if len(args) > 0 {
			t.Args = args
		}
		if len(b.AdditionalContexts) > 0 {
			t.Contexts = map[string]string{}
			for k, v := range b.AdditionalContexts {
				if dep, ok := strings.CutPrefix(v, types.ServicePrefix); ok {
					v = "target:" + names[dep]
				}
				t.Contexts[k] = v
			}
		}
		for _, ref := range b.Secrets {
			def := p.Secrets[ref.Source]
			id := ref.Target
			if id == "" {
				id = ref.Source
			}
			switch {
			case def.Environment != "":
				t.Secrets = append(t.Secrets, fmt.Sprintf("id=%s,type=env,env=%s", id, def.Environment))
			case def.File != "":
				t.Secrets = append(t.Secrets, fmt.Sprintf("id=%s,type=file,src=%s", id, def.File))
			}
		}
		for _, k := range append(append(types.SSHConfig(nil), b.SSH...), parseSSHFlags(f.ssh)...) {
			t.SSH = append(t.SSH, k.ID+"="+k.Path)
		}
		for n, u := range b.Ulimits {
			switch {
			case u.Single != 0:
				t.Ulimits = append(t.Ulimits, fmt.Sprintf("%s=%d", n, u.Single))
			default:
				t.Ulimits = append(t.Ulimits, fmt.Sprintf("%s=%d:%d", n, u.Soft, u.Hard))
			}
		}
		sort.Strings(t.Ulimits)
		if len(b.ExtraHosts) > 0 {
			t.ExtraHosts = map[string]string{}
			for h, ips := range b.ExtraHosts {
				t.ExtraHosts[h] = strings.Join(ips, ",")
			}
		}
		out.Target[names[name]] = t
	}
	var group bakeGroup
	for _, name := range build {
		if svc, ok := p.Services[name]; ok && svc.Build != nil {
			group.Targets = append(group.Targets, names[name])
		}
	}
	sort.Strings(group.Targets)
	out.Group["default"] = group
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(data))
	return err
}

// bakeTargetNames names each service's target as compose does: dots
// become underscores, and a name taken already gets underscores appended,
// in sorted service order.
func bakeTargetNames(p *project.Project) map[string]string {
	out := map[string]string{}
	used := map[string]bool{}
	names := make([]string, 0, len(p.Services))
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := strings.ReplaceAll(n, ".", "_")
		for used[t] {
			t += "_"
		}
		used[t] = true
		out[n] = t
	}
	return out
}

// bakeDockerfile is the Dockerfile's path as compose hands it to bake:
// joined to the context and with the directory's symlinks resolved.
func bakeDockerfile(contextDir, dockerfile string) string {
	if dockerfile == "" {
		return ""
	}
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(contextDir, dockerfile)
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(dockerfile)); err == nil {
		return filepath.Join(dir, filepath.Base(dockerfile))
	}
	return dockerfile
}

// buildLabels are the labels a built image gets: the build's own and
// compose's project, service and version labels.
func buildLabels(p *project.Project, svc types.ServiceConfig) map[string]string {
	out := map[string]string{}
	if svc.Build != nil {
		for k, v := range svc.Build.Labels {
			out[k] = v
		}
	}
	out["com.docker.compose.project"] = p.Name
	out["com.docker.compose.service"] = svc.Name
	out["com.docker.compose.version"] = version.Version
	return out
}

// parseSSHFlags reads --ssh ID[=PATH[,PATH...]] as compose's SSH keys.
func parseSSHFlags(flags []string) types.SSHConfig {
	var out types.SSHConfig
	for _, fl := range flags {
		id, path, _ := strings.Cut(fl, "=")
		out = append(out, types.SSHKey{ID: id, Path: path})
	}
	return out
}
