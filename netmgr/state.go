package netmgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berthrun/berth/internal/atomicfile"
	"github.com/berthrun/berth/internal/flock"
	"github.com/berthrun/berth/internal/names"
)

// Network is a berth network as recorded in the state directory.
type Network struct {
	Name    string            `json:"name"`
	ID      string            `json:"id"`
	Bridge  string            `json:"bridge"` // kernel name, at most 15 bytes
	Subnet  netip.Prefix      `json:"subnet"`
	Gateway netip.Addr        `json:"gateway"`
	IPRange netip.Prefix      `json:"ip_range,omitzero"` // allocation range inside Subnet
	Labels  map[string]string `json:"labels,omitempty"`
	// Internal networks get no NAT and no route out.
	Internal bool `json:"internal,omitempty"`
	// External networks were made by the user (berth network create);
	// Release never removes them.
	External bool      `json:"external,omitempty"`
	Project  string    `json:"project,omitempty"` // the project that created it
	Users    []string  `json:"users,omitempty"`   // projects using it
	Created  time.Time `json:"created"`
	// Endpoints attached, sorted by container ID.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// LastIP is the IPAM cursor: allocation continues after it, so a freed
	// address is not handed out again at once (stale ARP and DNS caches).
	LastIP netip.Addr `json:"last_ip,omitzero"`
}

// Endpoint is one container's interface on one network.
type Endpoint struct {
	Network     string       `json:"network"`
	ContainerID string       `json:"container_id"`
	NetNSPath   string       `json:"netns"`
	IfName      string       `json:"ifname"`      // inside the container
	HostIfName  string       `json:"host_ifname"` // the bridge port
	Address     netip.Prefix `json:"address"`     // the address with the subnet's length
	Gateway     netip.Addr   `json:"gateway"`
	MAC         string       `json:"mac"`
	Names       []string     `json:"names,omitempty"`
	Aliases     []string     `json:"aliases,omitempty"`
	// DefaultRoute is true when the container routes out through this
	// network.
	DefaultRoute bool `json:"default_route,omitempty"`
	// Unhealthy endpoints are left out of DNS answers.
	Unhealthy bool      `json:"unhealthy,omitempty"`
	Created   time.Time `json:"created"`
}

// IP is the endpoint's address.
func (e Endpoint) IP() netip.Addr { return e.Address.Addr() }

func (n *Network) endpoint(containerID string) (int, bool) {
	i := sort.Search(len(n.Endpoints), func(i int) bool { return n.Endpoints[i].ContainerID >= containerID })
	return i, i < len(n.Endpoints) && n.Endpoints[i].ContainerID == containerID
}

func (n *Network) putEndpoint(ep Endpoint) {
	i, ok := n.endpoint(ep.ContainerID)
	if ok {
		n.Endpoints[i] = ep
		return
	}
	n.Endpoints = slices.Insert(n.Endpoints, i, ep)
}

func (n *Network) dropEndpoint(containerID string) bool {
	i, ok := n.endpoint(containerID)
	if ok {
		n.Endpoints = slices.Delete(n.Endpoints, i, i+1)
	}
	return ok
}

// Manager creates and removes networks and endpoints, keeping their state
// in one directory. A Manager holds no state of its own: several Managers
// (in several processes) on the same directory see the same networks.
type Manager struct {
	dir string
}

// New returns a Manager keeping its state in dir, which is created if
// needed.
func New(dir string) (*Manager, error) {
	if dir == "" {
		return nil, invalidf("empty state directory")
	}
	if err := os.MkdirAll(filepath.Join(dir, "networks"), 0o700); err != nil {
		return nil, err
	}
	return &Manager{dir: dir}, nil
}

// Dir is the state directory.
func (m *Manager) Dir() string { return m.dir }

// Network names as compose and docker accept them; they become file names.
func checkName(name string) error {
	if names.Network(name) != nil {
		return invalidf("network name %q", name)
	}
	return nil
}

func (m *Manager) netFile(name string) string {
	return filepath.Join(m.dir, "networks", name+".json")
}

// lock takes the state directory's exclusive lock, waiting until ctx is
// done. flock locks belong to the open file, so goroutines of one process
// exclude each other too.
func (m *Manager) lock(ctx context.Context) (unlock func(), err error) {
	l, err := flock.Exclusive(ctx, filepath.Join(m.dir, "lock"))
	if err != nil {
		return nil, err
	}
	// Every writer of the state holds this lock: a temporary file seen now
	// was left by one that died before its rename.
	if err := atomicfile.RemoveStale(filepath.Join(m.dir, "networks")); err != nil {
		l.Unlock()
		return nil, err
	}
	return func() { l.Unlock() }, nil
}

// load reads one network. It needs no lock: files are replaced by rename.
func (m *Manager) load(name string) (*Network, error) {
	b, err := os.ReadFile(m.netFile(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("network %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var n Network
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("network %s: corrupt state: %w", name, err)
	}
	return &n, nil
}

func (m *Manager) loadAll() ([]*Network, error) {
	ents, err := os.ReadDir(filepath.Join(m.dir, "networks"))
	if err != nil {
		return nil, err
	}
	var out []*Network
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || checkName(name) != nil {
			continue
		}
		n, err := m.load(name)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// save replaces a network's file atomically. Callers hold the lock.
func (m *Manager) save(n *Network) error {
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(m.netFile(n.Name), append(b, '\n'), 0o600)
}

func (m *Manager) delete(name string) error {
	err := os.Remove(m.netFile(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Networks lists every network in the state directory, sorted by name.
func (m *Manager) Networks() ([]Network, error) {
	all, err := m.loadAll()
	if err != nil {
		return nil, err
	}
	out := make([]Network, len(all))
	for i, n := range all {
		out[i] = *n
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Network returns one network; the error wraps ErrNotFound if there is
// none of that name.
func (m *Manager) Network(name string) (Network, error) {
	if err := checkName(name); err != nil {
		return Network{}, err
	}
	n, err := m.load(name)
	if err != nil {
		return Network{}, err
	}
	return *n, nil
}

// Endpoints returns every endpoint of a container, over all networks.
func (m *Manager) Endpoints(containerID string) ([]Endpoint, error) {
	all, err := m.loadAll()
	if err != nil {
		return nil, err
	}
	var out []Endpoint
	for _, n := range all {
		if i, ok := n.endpoint(containerID); ok {
			out = append(out, n.Endpoints[i])
		}
	}
	return out, nil
}

// Lookup returns the addresses of the healthy endpoints that carry name
// (as a name or an alias) on a network, e.g. to write `links:` into
// /etc/hosts.
func (m *Manager) Lookup(network, name string) ([]netip.Addr, error) {
	n, err := m.Network(network)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ep := range n.Endpoints {
		if ep.hasName(name) && !ep.Unhealthy {
			out = append(out, ep.IP())
		}
	}
	return out, nil
}
