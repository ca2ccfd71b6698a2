package supervisor

import (
	"context"
	"net/netip"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/netmgr"
	"github.com/berthrun/berth/volmgr"
)

// The supervisor's logic talks to the libraries below it through these
// small interfaces, which it defines with the methods it uses: tests give it
// fakes and run without root or real kernels. Run gives it the real ones
// (image.Store, netmgr.Manager, volmgr.Manager, the runtime package).

// imageSource finds, pulls and mounts images (image.Store).
type imageSource interface {
	Image(ref string) (*image.Image, error)
	Pull(ctx context.Context, ref string, o image.PullOptions) (*image.PullResult, error)
	Mount(ctx context.Context, containerID, imageRef string, targets ...image.Target) (string, error)
	RemoveRootfs(containerID string) error
}

// networkAttacher makes the project's networks and attaches containers to
// them (netmgr.Manager).
type networkAttacher interface {
	networkLister
	Network(name string) (netmgr.Network, error)
	EnsureNetwork(ctx context.Context, spec netmgr.NetworkSpec) (netmgr.Network, error)
	Release(ctx context.Context, name, project string) (removed bool, err error)
	Attach(ctx context.Context, spec netmgr.AttachSpec) (netmgr.Endpoint, error)
	DetachAll(ctx context.Context, containerID string) error
	SetHealthy(ctx context.Context, containerID string, healthy bool) error
	Lookup(network, name string) ([]netip.Addr, error)
}

// networkLister lists networks (ProjectNetworks needs no more).
type networkLister interface {
	Networks() ([]netmgr.Network, error)
}

// volumePreparer makes the project's volumes and a container's mounts of
// them (volmgr.Manager).
type volumePreparer interface {
	Root() string
	Ensure(spec volmgr.VolumeSpec) (*volmgr.Volume, bool, error)
	External(name string) (*volmgr.Volume, error)
	List(f volmgr.Filters) ([]*volmgr.Volume, error)
	Prepare(containerID, project, rootfs string, mounts []volmgr.Mount) ([]volmgr.Mount, error)
	ReleaseAll(containerID string, removeAnonymous bool) ([]string, error)
	RemoveProjectVolumes(project string, names []string) ([]string, error)
	Bequeath(volumes map[string]string, service string, number int) error
	Bequeathed(project, service string, number int) (map[string]string, error)
	Settle(volumes map[string]string) error
}

// containerRuntime creates, loads and purges containers (engine/runtime).
type containerRuntime interface {
	Create(root string, spec runtime.Spec) (*runtime.Container, []string, error)
	Load(root, id string) (*runtime.Container, error)
	Purge(root, cgroupParent, id string) error
}

// engineRuntime is the runtime package as a containerRuntime.
type engineRuntime struct{}

func (engineRuntime) Create(root string, spec runtime.Spec) (*runtime.Container, []string, error) {
	return runtime.Create(root, spec)
}

func (engineRuntime) Load(root, id string) (*runtime.Container, error) {
	return runtime.Load(root, id)
}

func (engineRuntime) Purge(root, cgroupParent, id string) error {
	return runtime.Purge(root, cgroupParent, id)
}

// The real libraries are what the interfaces describe.
var (
	_ imageSource      = (*image.Store)(nil)
	_ networkAttacher  = (*netmgr.Manager)(nil)
	_ volumePreparer   = (*volmgr.Manager)(nil)
	_ containerRuntime = engineRuntime{}
)
