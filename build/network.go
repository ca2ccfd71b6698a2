package build

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/berthrun/berth/netmgr"
)

// BridgeNetwork is the bridge RUN containers join by default, as docker's
// builds use its default bridge: an address of its own, outbound NAT, no
// published ports.
const BridgeNetwork = "berth-build"

// bridge is this build's use of BridgeNetwork: ensured at the first RUN
// that wants it, released (and removed by the last build using it) when
// the build ends.
type bridge struct {
	once sync.Once
	m    *netmgr.Manager
	user string
	err  error
}

func (b *Builder) ensureBridge(ctx context.Context) (*netmgr.Manager, error) {
	br := &b.bridge
	br.once.Do(func() {
		if b.opts.NetworkDir == "" || b.opts.NetNSDir == "" {
			br.err = fmt.Errorf("the bridge network needs berth's network state directory")
			return
		}
		m, err := netmgr.New(b.opts.NetworkDir)
		if err != nil {
			br.err = err
			return
		}
		br.user = "build-" + randomHex(12)
		if _, err := m.EnsureNetwork(ctx, netmgr.NetworkSpec{Name: BridgeNetwork, Project: br.user}); err != nil {
			br.err = fmt.Errorf("network %s: %w", BridgeNetwork, err)
			br.user = ""
			return
		}
		br.m = m
	})
	return br.m, br.err
}

// releaseBridge ends this build's use of the bridge.
func (b *Builder) releaseBridge() {
	if b.bridge.m != nil && b.bridge.user != "" {
		_, _ = b.bridge.m.Release(context.Background(), BridgeNetwork, b.bridge.user)
	}
}

// attachBridge gives container id a network namespace on the bridge, with
// a default route out; the returned function undoes it.
func (b *Builder) attachBridge(ctx context.Context, id string) (string, func(), error) {
	m, err := b.ensureBridge(ctx)
	if err != nil {
		return "", nil, err
	}
	ns := filepath.Join(b.opts.NetNSDir, id)
	if err := netmgr.NewNetNS(ns); err != nil {
		return "", nil, err
	}
	undo := func() {
		_ = m.Detach(context.Background(), id, BridgeNetwork)
		_ = netmgr.RemoveNetNS(ns)
	}
	if _, err := m.Attach(ctx, netmgr.AttachSpec{Network: BridgeNetwork, ContainerID: id, NetNSPath: ns, DefaultRoute: true}); err != nil {
		undo()
		return "", nil, fmt.Errorf("network %s: %w", BridgeNetwork, err)
	}
	return ns, undo, nil
}

// attachment is a container's joining of the bridge, under way.
type attachment struct {
	done chan struct{}
	ns   string
	undo func()
	err  error
	once sync.Once // of detach
}

// attachSoon starts attachBridge for container id: a RUN joins the bridge
// while its layers are mounted rather than after.
func (b *Builder) attachSoon(ctx context.Context, id string) *attachment {
	a := &attachment{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.ns, a.undo, a.err = b.attachBridge(ctx, id)
	}()
	return a
}

// wait returns the attached network namespace's path.
func (a *attachment) wait() (string, error) {
	<-a.done
	return a.ns, a.err
}

// detach undoes a once it is made, in the background: taking a veth and a
// namespace down took 20-60 ms that the step's commit need not wait for.
// Build waits for it before it releases the bridge. A second call does
// nothing.
func (b *Builder) detach(a *attachment) {
	if a == nil {
		return
	}
	a.once.Do(func() {
		b.detaching.Add(1)
		go func() {
			defer b.detaching.Done()
			<-a.done
			if a.undo != nil {
				a.undo()
			}
		}()
	})
}
