package runtime

import (
	"os"
	"time"
)

// DefaultPath is the PATH a container gets when its environment sets none,
// as Docker does for images without one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultShmSize is the size of /dev/shm when Spec.ShmSize is zero (Docker's 64 MiB).
const DefaultShmSize = 64 << 20

// DefaultCgroupParent is the cgroup under which containers are placed when
// Spec.CgroupParent is empty.
const DefaultCgroupParent = "/berth"

// Spec is everything the runtime needs to create one container. It knows
// nothing about compose: the caller has already resolved images, users,
// volumes and networks into paths and numbers.
type Spec struct {
	// ID names the container in the state root and in its cgroup path:
	// ASCII letters, digits, '_', '+', '-' and '.'.
	ID string
	// Rootfs is an existing directory (typically an overlay mount) used as /.
	Rootfs string

	Args []string
	// Env is the process environment ("KEY=value"). PATH defaults to
	// DefaultPath and HOME to User.Home when missing.
	Env []string
	// Cwd defaults to "/".
	Cwd string
	// User is already resolved, see ResolveUser.
	User User

	// Hostname defaults to the ID (at most 63 bytes).
	Hostname   string
	Domainname string

	// CapAdd and CapDrop take Docker names ("NET_ADMIN" or "CAP_NET_ADMIN",
	// any case) or "ALL", applied to Docker's 14 default capabilities.
	CapAdd  []string
	CapDrop []string
	// Privileged gives every capability and host device, and drops the
	// masked and read-only paths and the seccomp filter; /sys is writable.
	Privileged      bool
	ReadOnlyRootfs  bool
	NoNewPrivileges bool
	Seccomp         SeccompMode

	Resources Resources
	// Ulimits whose hard limit exceeds berth's own are clamped (see Create).
	Ulimits []Ulimit
	Sysctls map[string]string
	// Tmpfs maps a container path to tmpfs options such as "size=64m,mode=1777".
	// "noexec,nosuid,nodev" are implied unless the options say otherwise.
	Tmpfs  map[string]string
	Mounts []Mount
	// ShmSize is the size of /dev/shm in bytes; zero means DefaultShmSize.
	ShmSize int64

	// NetNSPath is "" for a new network namespace with only lo up, or the
	// path of a namespace to join (e.g. /proc/<pid>/ns/net or a bind mount).
	NetNSPath string
	// CgroupParent is the cgroup path (relative to each hierarchy root) the
	// container's cgroup <CgroupParent>/<ID> is created in. Default DefaultCgroupParent.
	CgroupParent string

	Stdio Stdio
	// Terminal gives the container a pseudo-terminal as stdio instead of
	// Stdio; its master side is Container.Console after Start.
	Terminal bool

	// Init runs berth as PID 1 of the container (Docker's `init: true`),
	// forwarding signals to the command and reaping zombies. See WithInit.
	Init bool
	// InitBinary is the host path of a static berth binary bind-mounted
	// as InitPath; "" means os.Executable().
	InitBinary string
}

// SeccompMode selects the container's seccomp filter.
type SeccompMode int

const (
	// SeccompDefault is Docker's default profile (seccomp_default.json).
	SeccompDefault SeccompMode = iota
	// SeccompUnconfined installs no filter.
	SeccompUnconfined
)

// User is a resolved process identity.
type User struct {
	UID, GID       int
	AdditionalGIDs []int
	// Home is the user's home directory from /etc/passwd; it becomes HOME
	// when the environment has none.
	Home string
}

// Resources are the cgroup limits of a container, with Docker's units and
// meanings (zero means "not set").
type Resources struct {
	MemoryBytes int64
	// MemorySwapBytes is memory plus swap, as Docker's --memory-swap: 0 means
	// twice MemoryBytes, -1 unlimited.
	MemorySwapBytes int64
	// NanoCPUs is CPUs times 1e9 (compose `cpus: 1.5` is 1.5e9).
	NanoCPUs   int64
	CPUShares  uint64
	CpusetCpus string
	CpusetMems string
	// PidsLimit: 0 is unset, -1 unlimited.
	PidsLimit int64
	// OomScoreAdj is written for the container's init. Lowering it below
	// berth's own value needs CAP_SYS_RESOURCE.
	OomScoreAdj int
}

// Ulimit is one rlimit by its Docker name ("nofile", "nproc", "core", ...).
// -1 means unlimited.
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// Mount is a bind mount of a host path.
type Mount struct {
	Source      string
	Destination string
	ReadOnly    bool
	// Propagation is one of private, rprivate (default), shared, rshared,
	// slave, rslave.
	Propagation string
}

// Stdio says where the container's standard streams go. For each stream,
// a path wins over a file; with neither, the stream is /dev/null.
//
// Paths are typically named FIFOs under the caller's run directory. The
// runtime opens them O_RDWR, so the container's own descriptor keeps a
// reader and a writer alive: a supervisor that dies and is replaced never
// causes EPIPE/SIGPIPE or EOF in the container, it only stalls writes once
// the pipe buffer is full until someone reads again.
type Stdio struct {
	StdinPath, StdoutPath, StderrPath string
	Stdin, Stdout, Stderr             *os.File
}

// ExitStatus is how a container's init ended, in Docker's terms.
type ExitStatus struct {
	// Code is the exit code, or 128+signal when killed by a signal (137 for
	// SIGKILL). It is -1 when Unknown.
	Code int
	// Unknown is set when the exit was observed without being the parent
	// (a loaded container), so the status could not be reaped.
	Unknown   bool
	OOMKilled bool
	ExitedAt  time.Time
}

// Status is the lifecycle state of a container.
type Status string

const (
	StatusCreated Status = "created"
	StatusRunning Status = "running"
	StatusPaused  Status = "paused"
	StatusStopped Status = "stopped"
)

// State is a snapshot of a container for `ps`/`inspect`.
type State struct {
	ID     string
	Status Status
	// Pid is the host PID of the container's init (0 when stopped).
	Pid     int
	Started time.Time
}
