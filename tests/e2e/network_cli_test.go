package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/berthrun/berth/netmgr"
	"github.com/berthrun/berth/tests/harness"
)

// inspectedNetwork is the part of `network inspect` the tests read.
type inspectedNetwork struct {
	Name     string
	ID       string `json:"Id"`
	Driver   string
	Scope    string
	Internal bool
	IPAM     struct {
		Config []struct{ Subnet, IPRange, Gateway string }
	}
	Containers map[string]struct{ Name, IPv4Address, MacAddress string }
	Options    map[string]string
	Labels     map[string]string
}

func inspectNetwork(t *testing.T, e *harness.Env, name string) inspectedNetwork {
	t.Helper()
	out := e.MustRun("network", "inspect", name).Stdout
	var list []inspectedNetwork
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
		t.Fatalf("network inspect %s: %v\n%s", name, err, out)
	}
	return list[0]
}

func oneLine(t *testing.T, what, s string) {
	t.Helper()
	if s = strings.TrimSpace(s); s == "" || strings.Contains(s, "\n") {
		t.Errorf("%s: want one line on stderr, got %q", what, s)
	}
}

func TestNetworkCreateInspectRemove(t *testing.T) {
	e := harness.New(t)
	id := strings.TrimSpace(e.MustRun("network", "create", "--subnet", "10.123.0.0/24",
		"--ip-range", "10.123.0.128/25", "--label", "purpose=test", "mynet").Stdout)
	if len(id) != 64 {
		t.Fatalf("network create printed %q, want an ID", id)
	}

	out := e.MustRun("network", "ls").Stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NETWORK ID NAME DRIVER SCOPE" {
		t.Fatalf("network ls:\n%s", out)
	}
	if got := strings.Fields(lines[1]); len(got) != 4 || got[0] != id[:12] || got[1] != "mynet" || got[2] != "bridge" || got[3] != "local" {
		t.Errorf("network ls row: %q", lines[1])
	}
	if got := strings.TrimSpace(e.MustRun("network", "ls", "-q").Stdout); got != id[:12] {
		t.Errorf("network ls -q: %q", got)
	}
	filtered := func(args ...string) string {
		return strings.TrimSpace(e.MustRun(append([]string{"network", "ls", "-q"}, args...)...).Stdout)
	}
	for _, f := range []string{"label=purpose", "label=purpose=test", "name=yne", "id=" + id[:5], "driver=bridge"} {
		if got := filtered("--filter", f); got != id[:12] {
			t.Errorf("--filter %s: %q", f, got)
		}
	}
	for _, f := range []string{"label=purpose=other", "label=nope", "name=other", "driver=overlay"} {
		if got := filtered("--filter", f); got != "" {
			t.Errorf("--filter %s matched: %q", f, got)
		}
	}
	if r := e.Run("network", "ls", "--filter", "color=red"); r.Code != 1 {
		t.Errorf("an unknown filter: exit %d", r.Code)
	}
	var row struct{ ID, Name, Driver, Scope, Labels string }
	if err := json.Unmarshal([]byte(e.MustRun("network", "ls", "--format", "json").Stdout), &row); err != nil {
		t.Fatal(err)
	}
	if row.Name != "mynet" || row.Driver != "bridge" || row.Labels != "purpose=test" {
		t.Errorf("network ls --format json: %+v", row)
	}

	n := inspectNetwork(t, e, "mynet")
	if n.Name != "mynet" || n.ID != id || n.Driver != "bridge" || n.Scope != "local" || n.Internal {
		t.Errorf("inspect: %+v", n)
	}
	if len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "10.123.0.0/24" ||
		n.IPAM.Config[0].Gateway != "10.123.0.1" || n.IPAM.Config[0].IPRange != "10.123.0.128/25" {
		t.Errorf("inspect IPAM: %+v", n.IPAM)
	}
	if n.Labels["purpose"] != "test" || n.Containers == nil || len(n.Containers) != 0 {
		t.Errorf("inspect labels and containers: %+v %+v", n.Labels, n.Containers)
	}
	bridge := n.Options["com.docker.network.bridge.name"]
	if !strings.HasPrefix(bridge, "brb-") {
		t.Fatalf("inspect bridge name: %q", bridge)
	}
	if _, err := netlink.LinkByName(bridge); err != nil {
		t.Errorf("bridge %s: %v", bridge, err)
	}
	if got := inspectNetwork(t, e, id[:10]); got.Name != "mynet" {
		t.Errorf("inspect by ID prefix: %+v", got)
	}
	if got := strings.TrimSpace(e.MustRun("network", "inspect", "-f", "{{.Name}} {{.Driver}}", "mynet").Stdout); got != "mynet bridge" {
		t.Errorf("inspect -f: %q", got)
	}

	// Refusals: one line, exit 1, nothing made.
	for _, args := range [][]string{
		{"network", "create", "mynet"},
		{"network", "create", "-d", "overlay", "other"},
		{"network", "create", "--subnet", "10.123.0.0/16", "other"}, // overlaps mynet
		{"network", "create", "--subnet", "10.124.0.1/24", "other"}, // not a network address
		{"network", "create", "--gateway", "10.125.0.1", "other"},
		{"network", "create", "--subnet", "10.125.0.0/24", "--gateway", "10.126.0.1", "other"},
		{"network", "inspect", "nosuch"},
		{"network", "rm", "nosuch"},
	} {
		r := e.Run(args...)
		if r.Code != 1 {
			t.Errorf("%v: exit %d, stdout %q", args, r.Code, r.Stdout)
		}
		oneLine(t, strings.Join(args, " "), r.Stderr)
	}
	if got := filtered(); got != id[:12] {
		t.Errorf("after refusals, networks: %q", got)
	}
	e.MustRun("network", "rm", "-f", "nosuch")

	if got := strings.TrimSpace(e.MustRun("network", "rm", "mynet").Stdout); got != "mynet" {
		t.Errorf("network rm printed %q", got)
	}
	if got := filtered(); got != "" {
		t.Errorf("network ls after rm: %q", got)
	}
	if _, err := netlink.LinkByName(bridge); err == nil {
		t.Errorf("bridge %s left after rm", bridge)
	}
	if r := e.Run("network", "inspect", "mynet"); r.Code != 1 || strings.TrimSpace(r.Stdout) != "[]" {
		t.Errorf("inspect after rm: exit %d, %q", r.Code, r.Stdout)
	}
}

// attach puts a stand-in container on a network through netmgr, with the
// state directory berth uses, as a supervisor would. detach takes it off
// again; it also runs at the end of the test.
func attach(t *testing.T, e *harness.Env, network, containerID string) (ep netmgr.Endpoint, detach func()) {
	t.Helper()
	m, err := netmgr.New(filepath.Join(e.RunRoot, "networks"))
	if err != nil {
		t.Fatal(err)
	}
	ns := filepath.Join(t.TempDir(), "netns-"+containerID)
	if err := netmgr.NewNetNS(ns); err != nil {
		t.Fatal(err)
	}
	detach = func() {
		if err := m.Detach(context.Background(), containerID, network); err != nil {
			t.Errorf("detach: %v", err)
		}
		if err := netmgr.RemoveNetNS(ns); err != nil {
			t.Errorf("remove netns: %v", err)
		}
	}
	t.Cleanup(detach)
	ep, err = m.Attach(context.Background(), netmgr.AttachSpec{
		Network: network, ContainerID: containerID, NetNSPath: ns, Names: []string{"standin"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ep, detach
}

func TestNetworkInUseAndPrune(t *testing.T) {
	e := harness.New(t)
	e.MustRun("network", "create", "--subnet", "10.77.0.0/24", "busy")
	e.MustRun("network", "create", "idle1")
	e.MustRun("network", "create", "--internal", "idle2")
	// Registered before attach's cleanup, so it runs after it.
	t.Cleanup(func() { e.Run("network", "rm", "-f", "busy", "idle1", "idle2") })
	const cid = "c0ffee0000000000000000000000000000000000000000000000000000000001"
	ep, detach := attach(t, e, "busy", cid)
	if !netip.MustParsePrefix("10.77.0.0/24").Contains(ep.IP()) {
		t.Fatalf("endpoint address %s", ep.Address)
	}

	n := inspectNetwork(t, e, "busy")
	c, ok := n.Containers[cid]
	if !ok || c.IPv4Address != ep.Address.String() || c.MacAddress != ep.MAC || c.Name == "" {
		t.Errorf("inspect containers: %+v, endpoint %+v", n.Containers, ep)
	}
	if !inspectNetwork(t, e, "idle2").Internal {
		t.Errorf("--internal not kept")
	}

	r := e.Run("network", "rm", "busy")
	if r.Code != 1 || !strings.Contains(r.Stderr, cid) || !strings.Contains(r.Stderr, "busy") {
		t.Errorf("rm of a network in use: exit %d, stderr %q", r.Code, r.Stderr)
	}
	oneLine(t, "rm in use", r.Stderr)

	// Without -f, prune asks; anything but yes keeps everything.
	r = e.RunInput("n\n", "network", "prune")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Are you sure") || strings.Contains(r.Stdout, "Deleted") {
		t.Errorf("prune answered no: exit %d, %q", r.Code, r.Stdout)
	}
	if got := len(strings.Fields(e.MustRun("network", "ls", "-q").Stdout)); got != 3 {
		t.Errorf("networks after a refused prune: %d", got)
	}

	out := e.MustRun("network", "prune", "-f").Stdout
	if out != "Deleted Networks:\nidle1\nidle2\n" {
		t.Errorf("network prune -f: %q", out)
	}
	if got := strings.TrimSpace(e.MustRun("network", "ls", "--format", "{{.Name}}").Stdout); got != "busy" {
		t.Errorf("after prune: %q", got)
	}
	if out := e.MustRun("network", "prune", "-f").Stdout; out != "" {
		t.Errorf("a second prune: %q", out)
	}

	// Once the container is gone, rm works.
	detach()
	e.MustRun("network", "rm", "busy")
	if left := e.MustRun("network", "ls", "-q").Stdout; left != "" {
		t.Errorf("networks left: %q", left)
	}
}
