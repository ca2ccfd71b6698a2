// Package runtime runs containers on runc's libcontainer.
//
// It is berth's low-level container runtime: a Spec (paths, numbers and
// Docker-style options, no compose knowledge) becomes a container with
// Docker's defaults — namespaces, pivot_root, masked and read-only /proc
// paths, read-only /sys, the 14 default capabilities and Docker's default
// seccomp profile (seccomp_default.json). Create, Start, Wait, Stop, Exec,
// Pause and Destroy operate on it; Load adopts a container created by
// another process from the state root.
//
// The berth binary must dispatch two hooks before anything else:
// os.Args[1] == "init" calls Init (libcontainer re-executes the binary
// inside new containers), and os.Args[1] == ReaperArg runs RunReaper
// (Spec.Init).
package runtime

import (
	// nsenter's C constructor joins namespaces before the Go runtime starts
	// in "berth init"; the devices import registers the devices cgroup manager.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// Init is the container side of a start: it never returns.
func Init() {
	libcontainer.Init()
}
