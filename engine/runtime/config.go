package runtime

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
	devconfig "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Docker's masked paths: covered by /dev/null (files) or an empty read-only
// tmpfs (directories) inside the container.
var maskedPaths = []string{
	"/proc/asound",
	"/proc/acpi",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// Docker's read-only paths.
var readonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// cfsPeriod is the CFS period used for `cpus:` (Docker's 100 ms).
const cfsPeriod = 100000

// libcontainerConfig turns a Spec into libcontainer's configuration. It goes
// through an OCI runtime spec so that runc's own conversion (mount options,
// default devices, namespaces, cgroup resources) is used, then sets what the
// OCI route leaves to the caller (rlimits, privileged devices, seccomp).
// It returns warnings for settings that were adjusted.
func libcontainerConfig(s *Spec) (*configs.Config, []string, error) {
	oci, caps, err := ociSpec(s)
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	oci.Linux.Resources, warnings = ociResources(s.Resources, s.Privileged)
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName: s.ID,
		Spec:       oci,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("container config: %w", err)
	}
	// specconv records the current directory as a "bundle" label; berth has no bundle.
	cfg.Labels = slices.DeleteFunc(cfg.Labels, func(l string) bool { return strings.HasPrefix(l, "bundle=") })
	cfg.Labels = append(cfg.Labels, "berth.id="+s.ID)

	rl, w, err := rlimits(s.Ulimits)
	if err != nil {
		return nil, nil, err
	}
	cfg.Rlimits = rl
	warnings = append(warnings, w...)

	if s.Privileged {
		devs, err := hostDevices()
		if err != nil {
			return nil, nil, fmt.Errorf("privileged: %w", err)
		}
		cfg.Devices = devs
		cfg.Cgroups.Resources.Devices = []*devconfig.Rule{{
			Type: devconfig.WildcardDevice, Major: devconfig.Wildcard, Minor: devconfig.Wildcard,
			Permissions: "rwm", Allow: true,
		}}
	} else if s.Seccomp == SeccompDefault {
		sc, err := defaultSeccomp(caps)
		if err != nil {
			return nil, nil, err
		}
		cfg.Seccomp = sc
	}
	return cfg, warnings, nil
}

// ociSpec builds the OCI runtime spec of s (without resources and process
// rlimits) and returns the capability set it chose.
func ociSpec(s *Spec) (*specs.Spec, []string, error) {
	if s.Rootfs == "" || !filepath.IsAbs(s.Rootfs) {
		return nil, nil, fmt.Errorf("rootfs %q must be an absolute path", s.Rootfs)
	}
	if fi, err := os.Stat(s.Rootfs); err != nil {
		return nil, nil, fmt.Errorf("rootfs: %w", err)
	} else if !fi.IsDir() {
		return nil, nil, fmt.Errorf("rootfs %s is not a directory", s.Rootfs)
	}
	if len(s.Args) == 0 {
		return nil, nil, errors.New("no command")
	}

	var caps []string
	if s.Privileged {
		caps = allCaps()
	} else {
		var err error
		if caps, err = capabilities(s.CapAdd, s.CapDrop); err != nil {
			return nil, nil, err
		}
	}
	pcaps := &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	if s.User.UID != 0 {
		// As setuid(2) would: a non-root user keeps the bounding set only.
		pcaps.Effective, pcaps.Permitted = nil, nil
	}

	proc := &specs.Process{
		Args:            s.Args,
		Cwd:             cwdOrRoot(s.Cwd),
		User:            specs.User{UID: uint32(s.User.UID), GID: uint32(s.User.GID)},
		Capabilities:    pcaps,
		NoNewPrivileges: s.NoNewPrivileges,
	}
	if s.Resources.OomScoreAdj != 0 {
		v := s.Resources.OomScoreAdj
		proc.OOMScoreAdj = &v
	}

	shm := s.ShmSize
	if shm <= 0 {
		shm = DefaultShmSize
	}
	sysRO := "ro"
	if s.Privileged {
		sysRO = "rw"
	}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", sysRO}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", sysRO}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shm, 10)}},
	}

	user, rootProp, err := userMounts(s)
	if err != nil {
		return nil, nil, err
	}
	mounts = append(mounts, user...)

	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.NetworkNamespace, Path: s.NetNSPath},
		// A private cgroup namespace, Docker's default on cgroup v2, is
		// berth's on v1 too: the container sees the same /sys/fs/cgroup
		// (its own cgroup at the root of each read-only hierarchy), but
		// libcontainer mounts each v1 hierarchy afresh inside the namespace
		// instead of bind mounting the container's directory and remounting
		// it read-only through its checked path, which cost about a fifth
		// of an init's CPU. /proc/self/cgroup shows "/", as on v2.
		{Type: specs.CgroupNamespace},
	}

	parent := s.CgroupParent
	if parent == "" {
		parent = DefaultCgroupParent
	}
	oci := &specs.Spec{
		Version:    specs.Version,
		Root:       &specs.Root{Path: s.Rootfs, Readonly: s.ReadOnlyRootfs},
		Process:    proc,
		Hostname:   s.Hostname,
		Domainname: s.Domainname,
		Mounts:     mounts,
		Linux: &specs.Linux{
			Namespaces:        ns,
			CgroupsPath:       path.Join("/", parent, s.ID),
			Sysctl:            s.Sysctls,
			RootfsPropagation: rootProp,
		},
	}
	if !s.Privileged {
		oci.Linux.MaskedPaths = maskedPaths
		oci.Linux.ReadonlyPaths = readonlyPaths
	}
	return oci, caps, nil
}

func cwdOrRoot(cwd string) string {
	if cwd == "" {
		return "/"
	}
	return cwd
}

// userMounts converts bind mounts and tmpfs into OCI mounts, parents before
// children, and picks the rootfs propagation their propagation needs.
func userMounts(s *Spec) ([]specs.Mount, string, error) {
	var out []specs.Mount
	rootProp := "rprivate"
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return nil, "", fmt.Errorf("mount destination %q is not absolute", m.Destination)
		}
		if !filepath.IsAbs(m.Source) {
			return nil, "", fmt.Errorf("mount source %q is not absolute", m.Source)
		}
		prop := m.Propagation
		if prop == "" {
			prop = "rprivate"
		}
		switch prop {
		case "private", "rprivate":
		case "shared", "rshared":
			// A shared mount only propagates if the container's root is shared too.
			rootProp = "rshared"
		case "slave", "rslave":
			if rootProp != "rshared" {
				rootProp = "rslave"
			}
		default:
			return nil, "", fmt.Errorf("mount %s: unknown propagation %q", m.Destination, m.Propagation)
		}
		opts := []string{"rbind", prop}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		out = append(out, specs.Mount{Destination: filepath.Clean(m.Destination), Type: "bind", Source: m.Source, Options: opts})
	}
	for dst, o := range s.Tmpfs {
		if !filepath.IsAbs(dst) {
			return nil, "", fmt.Errorf("tmpfs destination %q is not absolute", dst)
		}
		out = append(out, specs.Mount{Destination: filepath.Clean(dst), Type: "tmpfs", Source: "tmpfs", Options: tmpfsOptions(o)})
	}
	sort.SliceStable(out, func(i, j int) bool { return depth(out[i].Destination) < depth(out[j].Destination) })
	return out, rootProp, nil
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// tmpfsOptions adds Docker's tmpfs defaults (noexec, nosuid, nodev) unless
// the user's options set the opposite.
func tmpfsOptions(opts string) []string {
	var user []string
	for _, o := range strings.Split(opts, ",") {
		if o = strings.TrimSpace(o); o != "" {
			user = append(user, o)
		}
	}
	var out []string
	for _, d := range [][2]string{{"noexec", "exec"}, {"nosuid", "suid"}, {"nodev", "dev"}} {
		if !slices.Contains(user, d[0]) && !slices.Contains(user, d[1]) {
			out = append(out, d[0])
		}
	}
	return append(out, user...)
}

// ociResources converts Resources with Docker's defaults: memory+swap is
// twice the memory when unset, `cpus` becomes a CFS quota over a 100 ms
// period. A swap limit is dropped with a warning when the kernel does not
// account swap.
func ociResources(r Resources, privileged bool) (*specs.LinuxResources, []string) {
	var warnings []string
	out := &specs.LinuxResources{}
	if !privileged {
		// Deny every device; specconv appends the default allowed ones.
		out.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	}
	if r.MemoryBytes > 0 || r.MemorySwapBytes != 0 {
		mem := &specs.LinuxMemory{}
		if r.MemoryBytes > 0 {
			mem.Limit = &r.MemoryBytes
		}
		swap := r.MemorySwapBytes
		if swap == 0 && r.MemoryBytes > 0 {
			swap = 2 * r.MemoryBytes
		}
		if swap != 0 && r.MemoryBytes == 0 {
			warnings = append(warnings, "memory swap limit ignored: it needs a memory limit")
		}
		if swap != 0 && r.MemoryBytes > 0 {
			if swapAccounted() {
				mem.Swap = &swap
			} else {
				warnings = append(warnings, "memory swap limit ignored: the kernel does not account swap")
			}
		}
		out.Memory = mem
	}
	if r.NanoCPUs > 0 || r.CPUShares > 0 || r.CpusetCpus != "" || r.CpusetMems != "" {
		cpu := &specs.LinuxCPU{Cpus: r.CpusetCpus, Mems: r.CpusetMems}
		if r.CPUShares > 0 {
			shares := r.CPUShares
			cpu.Shares = &shares
		}
		if r.NanoCPUs > 0 {
			period := uint64(cfsPeriod)
			quota := r.NanoCPUs * cfsPeriod / 1e9
			if quota < 1000 {
				quota = 1000 // the kernel's minimum quota is 1 ms
			}
			cpu.Period, cpu.Quota = &period, &quota
		}
		out.CPU = cpu
	}
	if r.PidsLimit != 0 {
		limit := r.PidsLimit
		if limit < 0 {
			limit = -1
		}
		out.Pids = &specs.LinuxPids{Limit: &limit}
	}
	return out, warnings
}

// swapAccounted reports whether a memory+swap limit can be set.
func swapAccounted() bool {
	if cgroups.IsCgroup2UnifiedMode() {
		return swapAccountedV2("/sys/fs/cgroup")
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// swapAccountedV2 reports whether the kernel gives cgroups memory.swap.max
// (libcontainer writes the swap limit there, and fails the container when
// it is missing). The kernel gives it to every cgroup that has memory.max,
// or to none when booted with swapaccount=0 or cgroup.memory=noswap, so
// one child of the root with memory.max tells. Without one, swap is
// assumed accounted, the kernel's default.
func swapAccountedV2(root string) bool {
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "memory.max")); err != nil {
			continue
		}
		_, err := os.Stat(filepath.Join(dir, "memory.swap.max"))
		return err == nil
	}
	return true
}

var rlimitNames = map[string]int{
	"as":         unix.RLIMIT_AS,
	"core":       unix.RLIMIT_CORE,
	"cpu":        unix.RLIMIT_CPU,
	"data":       unix.RLIMIT_DATA,
	"fsize":      unix.RLIMIT_FSIZE,
	"locks":      unix.RLIMIT_LOCKS,
	"memlock":    unix.RLIMIT_MEMLOCK,
	"msgqueue":   unix.RLIMIT_MSGQUEUE,
	"nice":       unix.RLIMIT_NICE,
	"nofile":     unix.RLIMIT_NOFILE,
	"nproc":      unix.RLIMIT_NPROC,
	"rss":        unix.RLIMIT_RSS,
	"rtprio":     unix.RLIMIT_RTPRIO,
	"rttime":     unix.RLIMIT_RTTIME,
	"sigpending": unix.RLIMIT_SIGPENDING,
	"stack":      unix.RLIMIT_STACK,
}

// rlimits converts ulimits, clamping each to berth's own hard limit: raising
// a hard limit needs CAP_SYS_RESOURCE, and without it the container would
// fail to start.
func rlimits(ul []Ulimit) ([]configs.Rlimit, []string, error) {
	var out []configs.Rlimit
	var warnings []string
	for _, u := range ul {
		typ, ok := rlimitNames[strings.ToLower(u.Name)]
		if !ok {
			return nil, nil, fmt.Errorf("ulimits: unknown limit %q", u.Name)
		}
		conv := func(v int64) uint64 {
			if v < 0 {
				return unix.RLIM_INFINITY
			}
			return uint64(v)
		}
		soft, hard := conv(u.Soft), conv(u.Hard)
		if soft > hard {
			return nil, nil, fmt.Errorf("ulimits: %s soft limit %d is above the hard limit %d", u.Name, u.Soft, u.Hard)
		}
		var own unix.Rlimit
		if err := unix.Getrlimit(typ, &own); err != nil {
			return nil, nil, fmt.Errorf("ulimits: %s: %w", u.Name, err)
		}
		if hard > own.Max {
			warnings = append(warnings, fmt.Sprintf("ulimits: %s hard %s exceeds berth's own hard limit %s; clamped", u.Name, rlimitString(hard), rlimitString(own.Max)))
			hard = own.Max
			soft = min(soft, hard)
		}
		out = append(out, configs.Rlimit{Type: typ, Soft: soft, Hard: hard})
	}
	return out, warnings, nil
}

func rlimitString(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// hostDevices lists the device nodes under the host's /dev for a privileged
// container, as Docker does.
func hostDevices() ([]*devconfig.Device, error) {
	var out []*devconfig.Device
	err := filepath.WalkDir("/dev", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if p != "/dev" && errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() == "console" || d.Type()&os.ModeDevice == 0 {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil // raced with removal
		}
		typ := devconfig.BlockDevice
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFBLK:
		case unix.S_IFCHR:
			typ = devconfig.CharDevice
		default:
			return nil
		}
		out = append(out, &devconfig.Device{
			Rule: devconfig.Rule{
				Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
				Permissions: "rwm", Allow: true,
			},
			Path: p, FileMode: os.FileMode(st.Mode &^ unix.S_IFMT), Uid: st.Uid, Gid: st.Gid,
		})
		return nil
	})
	return out, err
}
