// Package supervisor is the per-project process that owns a project's
// containers: it converges them to the project's model, waits on them so
// that exit codes are kept, drains their logs, and answers the CLI over a
// unix socket. It also holds the client side of that socket.
package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/berthrun/berth/internal/names"
)

// Paths are berth's two roots and everything found under them.
type Paths struct {
	Root    string // persistent: images, volumes, container records and logs
	RunRoot string // runtime: sockets, FIFOs, libcontainer state
}

// CheckProject refuses a project name that would not stay one directory
// under the run root. The CLI checks names by compose's rule first; the
// supervisor's entry points check again, so that no caller can reach
// outside the roots through a name.
func (p Paths) CheckProject(project string) error {
	if err := names.PathElem(project); err != nil {
		return fmt.Errorf("project %w", err)
	}
	return names.Project(project)
}

// ProjectRunDir holds a project's supervisor socket, lock and log.
func (p Paths) ProjectRunDir(project string) string {
	return filepath.Join(p.RunRoot, "projects", project)
}

// Socket is where the project's supervisor listens.
func (p Paths) Socket(project string) string {
	return filepath.Join(p.ProjectRunDir(project), "supervisor.sock")
}

// Lock is held by the project's supervisor while it runs, so there is one.
func (p Paths) Lock(project string) string {
	return filepath.Join(p.ProjectRunDir(project), "supervisor.lock")
}

// Journal is the history of the project's container events, which
// outlives supervisors and goes with the project's last container.
func (p Paths) Journal(project string) string {
	return filepath.Join(p.ProjectRunDir(project), "events.jsonl")
}

// Log is the supervisor's own log.
func (p Paths) Log(project string) string {
	return filepath.Join(p.ProjectRunDir(project), "supervisor.log")
}

// RuntimeRoot is libcontainer's state root.
func (p Paths) RuntimeRoot() string { return filepath.Join(p.RunRoot, "runtime") }

// FIFODir holds a container's stdout and stderr FIFOs.
func (p Paths) FIFODir(id string) string { return filepath.Join(p.RunRoot, "fifo", id) }

// ContainersDir holds one directory per container: its record and log.
func (p Paths) ContainersDir() string { return filepath.Join(p.Root, "containers") }

// ContainerDir is one container's directory.
func (p Paths) ContainerDir(id string) string { return filepath.Join(p.ContainersDir(), id) }

// ImageRoot is the image store.
func (p Paths) ImageRoot() string { return filepath.Join(p.Root, "image") }

// VolumeRoot is where named volumes live.
func (p Paths) VolumeRoot() string { return filepath.Join(p.Root, "volumes") }

// CgroupParent is the cgroup that holds this installation's containers:
// /berth for the default run root, else one derived from the run root, so
// that two berths on one host (tests, for one) never share it.
func (p Paths) CgroupParent() string {
	if p.RunRoot == "/run/berth" {
		return "/berth"
	}
	sum := sha256.Sum256([]byte(p.RunRoot))
	return "/berth-" + hex.EncodeToString(sum[:4])
}

// NetworkDir holds netmgr's network and endpoint state. Bridges do not
// outlive a reboot, so neither does their state.
func (p Paths) NetworkDir() string { return filepath.Join(p.RunRoot, "networks") }

// NetNS is the bind mount that keeps a container's network namespace.
func (p Paths) NetNS(id string) string { return filepath.Join(p.RunRoot, "netns", id) }
