// Package runtime runs containers on runc's libcontainer.
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
