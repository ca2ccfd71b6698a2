package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/project/model"
)

// command is what the container runs: docker's rules for combining the
// service's entrypoint and command with the image's. A service entrypoint
// replaces the image's and drops the image's Cmd; a service command
// replaces the image's Cmd only.
func command(s *model.Service, img *image.Config) ([]string, error) {
	entrypoint, cmd := img.Entrypoint, img.Cmd
	if s.Entrypoint != nil {
		entrypoint, cmd = s.Entrypoint, nil
	}
	if s.Command != nil {
		cmd = s.Command
	}
	args := append(append([]string{}, entrypoint...), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command specified: the image has no CMD or ENTRYPOINT and the service sets neither command nor entrypoint")
	}
	return args, nil
}

// environment is the image's environment overridden by the service's, key
// by key, in the image's order followed by the service's new keys.
func environment(imgEnv, svcEnv []string) []string {
	idx := map[string]int{}
	var out []string
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			return
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	for _, kv := range imgEnv {
		set(kv)
	}
	for _, kv := range svcEnv {
		set(kv)
	}
	return out
}

// hostnameOf is the container's hostname: the service's, else the short
// container ID, as docker does.
func hostnameOf(s *model.Service, id string) string {
	if s.Hostname != "" {
		return s.Hostname
	}
	return id[:12]
}

// containerSpec turns a service's replica into the runtime's spec. files is
// the container's directory, where /etc/hostname, /etc/hosts and
// /etc/resolv.conf are written for it.
func containerSpec(rec *Record, s *model.Service, img *image.Image, rootfs, files string, ns netSetup) (runtime.Spec, []string, error) {
	var warnings []string
	args, err := command(s, &img.Config)
	if err != nil {
		return runtime.Spec{}, nil, err
	}
	userSpec := s.User
	if userSpec == "" {
		userSpec = img.Config.User
	}
	user, err := runtime.ResolveUser(rootfs, userSpec, s.GroupAdd)
	if err != nil {
		return runtime.Spec{}, nil, fmt.Errorf("user %q: %w", userSpec, err)
	}
	hostname := hostnameOf(s, rec.ID)
	cwd := s.WorkingDir
	if cwd == "" {
		cwd = img.Config.WorkingDir
	}
	spec := runtime.Spec{
		ID:             rec.ID,
		Rootfs:         rootfs,
		Args:           args,
		Env:            environment(img.Config.Env, s.Environment),
		Cwd:            cwd,
		User:           user,
		Hostname:       hostname,
		Domainname:     s.Domainname,
		CapAdd:         s.CapAdd,
		CapDrop:        s.CapDrop,
		Privileged:     s.Privileged,
		ReadOnlyRootfs: s.ReadOnly,
		Sysctls:        s.Sysctls,
		ShmSize:        s.ShmSize,
		Init:           s.Init,
		InitBinary:     initBinary(),
		NetNSPath:      ns.netns,
		Resources: runtime.Resources{
			MemoryBytes:     s.Resources.MemoryBytes,
			MemorySwapBytes: s.Resources.MemorySwapBytes,
			NanoCPUs:        s.Resources.NanoCPUs,
			CPUShares:       uint64(max(s.Resources.CPUShares, 0)),
			CpusetCpus:      s.Resources.CpusetCpus,
			PidsLimit:       s.Resources.PidsLimit,
			OomScoreAdj:     int(s.Resources.OomScoreAdj),
		},
	}
	for _, opt := range s.SecurityOpt {
		k, v, _ := strings.Cut(strings.Replace(opt, ":", "=", 1), "=")
		switch {
		case k == "seccomp" && v == "unconfined":
			spec.Seccomp = runtime.SeccompUnconfined
		case k == "no-new-privileges" && (v == "" || v == "true"):
			spec.NoNewPrivileges = true
		case k == "no-new-privileges" && v == "false":
		default:
			warnings = append(warnings, fmt.Sprintf("security_opt %q is not supported and was ignored", opt))
		}
	}
	names := make([]string, 0, len(s.Ulimits))
	for n := range s.Ulimits {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		u := s.Ulimits[n]
		spec.Ulimits = append(spec.Ulimits, runtime.Ulimit{Name: n, Soft: u.Soft, Hard: u.Hard})
	}
	if len(s.Tmpfs) > 0 {
		spec.Tmpfs = map[string]string{}
		for _, t := range s.Tmpfs {
			path, opts, _ := strings.Cut(t, ":")
			spec.Tmpfs[path] = opts
		}
	}

	// /etc/hostname, /etc/hosts and /etc/resolv.conf are the container's
	// own files, bind mounted, as docker does.
	for _, f := range []struct {
		name string
		data []byte
	}{{"hostname", []byte(hostname + "\n")}, {"hosts", ns.hosts}, {"resolv.conf", ns.resolv}} {
		path := filepath.Join(files, f.name)
		if err := os.WriteFile(path, f.data, 0o644); err != nil {
			return runtime.Spec{}, nil, err
		}
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: path, Destination: "/etc/" + f.name})
	}
	return spec, warnings, nil
}

// rootTargets are the mount points the runtime needs in a container's root:
// its default file systems, the files containerSpec bind mounts, and the
// init. The image store puts those the image lacks in a shared init layer.
func rootTargets(s *model.Service) []image.Target {
	t := []image.Target{
		{Path: "/proc", Dir: true}, {Path: "/dev", Dir: true}, {Path: "/sys", Dir: true},
		{Path: "/etc/hostname"}, {Path: "/etc/hosts"}, {Path: "/etc/resolv.conf"},
	}
	if s.Init {
		t = append(t, image.Target{Path: runtime.InitPath})
	}
	return t
}

// initBinary is the init for `init: true`: berth-init beside the berth
// binary (a small static C program, see engine/runtime/cinit), else ""
// for the berth binary itself, which can act as one too.
func initBinary() string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(self), "berth-init")
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return p
	}
	return ""
}
