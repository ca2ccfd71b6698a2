package netmgr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// NetworkSpec asks for a network.
type NetworkSpec struct {
	Name   string // e.g. "myproj_default", or "shared"
	Labels map[string]string
	// Internal networks get no NAT and containers no default route.
	Internal bool
	// Subnet, Gateway and IPRange are optional; by default the subnet comes
	// from the pool, the gateway is its first address and containers get
	// addresses from the whole subnet.
	Subnet  netip.Prefix
	Gateway netip.Addr
	IPRange netip.Prefix
	// Project is recorded as a user of the network (and as its creator).
	Project string
	// External marks a network created by the user (berth network create):
	// Release never removes it, RemoveNetwork does.
	External bool
	// Pool overrides DefaultPool (tests, --default-address-pool).
	Pool []netip.Prefix
}

// EnsureNetwork creates the network if it does not exist and records
// spec.Project as one of its users. For an existing network it checks that
// spec agrees with it and repairs the kernel side (bridge, address, rules),
// which may be gone after a reboot. A network that fails half-way is
// removed again.
func (m *Manager) EnsureNetwork(ctx context.Context, spec NetworkSpec) (Network, error) {
	if err := checkName(spec.Name); err != nil {
		return Network{}, err
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return Network{}, err
	}
	defer unlock()

	n, err := m.load(spec.Name)
	switch {
	case err == nil:
		if err := compatible(n, spec); err != nil {
			return Network{}, err
		}
		if spec.Project != "" && !slices.Contains(n.Users, spec.Project) {
			n.Users = append(n.Users, spec.Project)
			if err := m.save(n); err != nil {
				return Network{}, err
			}
		}
		if err := ensureKernel(ctx, n); err != nil {
			return Network{}, fmt.Errorf("network %s: %w", n.Name, err)
		}
		return *n, nil
	case !errors.Is(err, ErrNotFound):
		return Network{}, err
	}

	n, err = m.newNetwork(spec)
	if err != nil {
		return Network{}, err
	}
	// State first, kernel second: a crash in between leaves a record that
	// RemoveNetwork can tear down, never objects nobody knows of.
	if err := m.save(n); err != nil {
		return Network{}, err
	}
	if err := ensureKernel(ctx, n); err != nil {
		if terr := m.teardown(context.WithoutCancel(ctx), n); terr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", terr))
		}
		return Network{}, fmt.Errorf("create network %s: %w", n.Name, err)
	}
	return *n, nil
}

func compatible(n *Network, spec NetworkSpec) error {
	conflict := func(what string, have, want any) error {
		return fmt.Errorf("%w: network %s exists with %s %v, not %v", ErrConflict, n.Name, what, have, want)
	}
	switch {
	case n.Internal != spec.Internal:
		return conflict("internal", n.Internal, spec.Internal)
	case spec.Subnet.IsValid() && spec.Subnet != n.Subnet:
		return conflict("subnet", n.Subnet, spec.Subnet)
	case spec.Gateway.IsValid() && spec.Gateway != n.Gateway:
		return conflict("gateway", n.Gateway, spec.Gateway)
	case spec.IPRange.IsValid() && spec.IPRange.Masked() != n.IPRange:
		return conflict("ip_range", n.IPRange, spec.IPRange)
	}
	return nil
}

// newNetwork fills in a network record: subnet, gateway, bridge name, ID.
// The caller holds the lock.
func (m *Manager) newNetwork(spec NetworkSpec) (*Network, error) {
	others, err := m.loadAll()
	if err != nil {
		return nil, err
	}
	var taken []netip.Prefix
	bridges := map[string]bool{}
	for _, o := range others {
		taken = append(taken, o.Subnet)
		bridges[o.Bridge] = true
	}
	subnet := spec.Subnet
	if subnet.IsValid() {
		for _, o := range others {
			if o.Subnet.Overlaps(subnet) {
				return nil, fmt.Errorf("%w: subnet %s overlaps network %s (%s)", ErrConflict, subnet, o.Name, o.Subnet)
			}
		}
	} else {
		host, err := hostPrefixes()
		if err != nil {
			return nil, err
		}
		pool := spec.Pool
		if pool == nil {
			pool = DefaultPool()
		}
		if subnet, err = pickSubnet(pool, append(taken, host...)); err != nil {
			return nil, err
		}
	}
	gw := spec.Gateway
	if !gw.IsValid() && subnet.IsValid() && subnet.Addr().Is4() {
		gw = addr4(u32(subnet.Masked().Addr()) + 1)
	}
	rng := spec.IPRange
	if rng.IsValid() {
		rng = rng.Masked()
	}
	if err := checkSubnet(subnet, gw, rng); err != nil {
		return nil, err
	}
	br := bridgeName(spec.Name, 0)
	for salt := 1; bridges[br]; salt++ {
		br = bridgeName(spec.Name, salt)
	}
	id := make([]byte, 32)
	rand.Read(id)
	n := &Network{
		Name:     spec.Name,
		ID:       hex.EncodeToString(id),
		Bridge:   br,
		Subnet:   subnet,
		Gateway:  gw,
		IPRange:  rng,
		Labels:   maps.Clone(spec.Labels),
		Internal: spec.Internal,
		External: spec.External,
		Project:  spec.Project,
		Created:  time.Now().UTC(),
	}
	if spec.Project != "" {
		n.Users = []string{spec.Project}
	}
	return n, nil
}

func ensureKernel(ctx context.Context, n *Network) error {
	if err := ensureBridge(n); err != nil {
		return err
	}
	if !n.Internal {
		if err := enableForwarding(); err != nil {
			return err
		}
	}
	return ensureNAT(ctx, n)
}

// teardown removes a network's rules, bridge and record, in the reverse
// order of creation; each step succeeds when its object is already gone.
// The caller holds the lock.
func (m *Manager) teardown(ctx context.Context, n *Network) error {
	if err := removeNAT(ctx, n.Bridge); err != nil {
		return err
	}
	if err := removeBridge(n.Bridge); err != nil {
		return err
	}
	return m.delete(n.Name)
}

// RemoveNetwork removes a network whatever its users, refusing with an
// *InUseError (errors.Is ErrInUse) while containers are attached. Removing
// a network that does not exist returns an error wrapping ErrNotFound.
func (m *Manager) RemoveNetwork(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	n, err := m.load(name)
	if err != nil {
		return err
	}
	if len(n.Endpoints) > 0 {
		return inUse(n)
	}
	return m.teardown(ctx, n)
}

func inUse(n *Network) error {
	e := &InUseError{Network: n.Name}
	for _, ep := range n.Endpoints {
		e.Containers = append(e.Containers, ep.ContainerID)
	}
	return e
}

// Release ends project's use of a network and removes the network when no
// user is left, unless it is External; removed says whether it was. If
// containers are still attached (of a project that never called
// EnsureNetwork), the network stays and the error is an *InUseError.
// Releasing a network that is gone is not an error.
func (m *Manager) Release(ctx context.Context, name, project string) (removed bool, err error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	n, err := m.load(name)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if i := slices.Index(n.Users, project); i >= 0 {
		n.Users = slices.Delete(n.Users, i, i+1)
		if err := m.save(n); err != nil {
			return false, err
		}
	}
	if len(n.Users) > 0 || n.External {
		return false, nil
	}
	if len(n.Endpoints) > 0 {
		return false, inUse(n)
	}
	if err := m.teardown(ctx, n); err != nil {
		return false, err
	}
	return true, nil
}
