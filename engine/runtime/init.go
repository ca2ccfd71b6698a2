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
// A binary that starts containers is re-executed by libcontainer as "init"
// inside new containers, and Spec.Init may run it as ReaperArg; this
// package's init function catches both (see Reexec).
package runtime

import (
	"os"

	// nsenter's C constructor joins namespaces before the Go runtime starts
	// in "berth init"; the devices import registers the devices cgroup manager.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// Init is the container side of a start: it never returns.
func Init() {
	loadPrecompiledSeccomp()
	libcontainer.Init()
}

// init runs Reexec as soon as this package's imports are initialized.
// Go initializes the packages of a binary in import-path order as their
// imports allow, so this comes before the packages that only the CLI
// needs (compose-go's JSON schema, the ssh client, Kubernetes' API
// types): in the berth binary those inits are about 18 of the ~32 ms of
// package initialization (far more on a loaded machine), which every
// container start paid once more in libcontainer's init before it
// reached the container's command.
func init() { Reexec() }

// Reexec handles the two ways berth's binaries are re-executed by the
// runtime, and returns only when the process is neither: as "init",
// libcontainer's side inside a new container; as ReaperArg, a container's
// PID 1 for `init: true` without berth-init. The package's init function
// calls it; calling it again (as main packages may, first thing) is
// harmless.
func Reexec() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case "init":
		Init()
	case ReaperArg:
		os.Exit(RunReaper(os.Args[2:]))
	}
}
