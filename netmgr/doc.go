// Package netmgr gives containers their network: one Linux bridge per
// compose network, addresses from an on-disk IPAM, a veth pair per
// container and network, outbound NAT through nftables, the embedded DNS
// server at 127.0.0.11 inside each container's network namespace, and the
// /etc/hosts and /etc/resolv.conf files the engine bind-mounts.
//
// Network and endpoint state lives as JSON files in a state directory
// chosen by the caller, changed only under an exclusive flock, because
// several berth processes (one supervisor per project) can share a network.
// Readers (inspection and DNS) never lock: every file is replaced by rename.
//
// Kernel objects are made in the network namespace of the calling process;
// containers' namespaces are reached through their netns file paths.
//
// A container's way onto its networks, as the supervisor drives it:
//
//	EnsureNetwork(spec)                  once per network and project
//	NewNetNS(<run root>/netns/<id>)      before the container starts
//	Attach(spec) for each network        first network: DefaultRoute
//	ResolvConf(...), HostsFile(...)      files for the engine to bind-mount
//	DNSServer.Add(id, netns path)        after Attach
//	engine starts the container in the netns (by path)
//	... SetHealthy as health checks report ...
//	DNSServer.Remove, DetachAll, RemoveNetNS    when it stops
//	Release(network, project)            on down
//
// Choices made here:
//   - NAT and isolation are nftables rules in one table, "ip berth",
//     written through netlink with github.com/google/nftables in one
//     batch per change (see nat.go); no iptables, no nft binary.
//   - Owned DNS names are answered with TTL 0 (docker: 600) so that scaling
//     and health changes reach caching resolvers at once; the server
//     rereads the state at most every 250 ms.
//   - Single-label names berth cannot answer get NXDOMAIN at once instead of
//     going upstream: a service that is not up yet must fail fast.
//   - A freed address is handed out again only after the rest of the range
//     (allocation continues after the last one given), and MACs derive from
//     addresses, so neighbours' ARP caches do not go stale.
package netmgr
