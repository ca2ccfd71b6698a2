package runtime

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Stats are a running container's resource use, from its cgroup (v1 or
// v2 alike, through libcontainer's cgroup manager) and its network
// namespace.
type Stats struct {
	CPUNanos    uint64 // CPU time used, all CPUs
	MemoryUsage uint64 // without the inactive page cache, as docker counts it
	MemoryLimit uint64 // 0 when unlimited
	Pids        uint64
	BlockRead   uint64
	BlockWrite  uint64
	NetRx       uint64
	NetTx       uint64
}

// Stats reads the container's resource use.
func (c *Container) Stats() (Stats, error) {
	var out Stats
	st, err := c.lc.Stats()
	if err != nil {
		return out, err
	}
	if cg := st.CgroupStats; cg != nil {
		out.CPUNanos = cg.CpuStats.CpuUsage.TotalUsage
		mem := cg.MemoryStats
		out.MemoryUsage = mem.Usage.Usage
		inactive := mem.Stats["total_inactive_file"]
		if v, ok := mem.Stats["inactive_file"]; ok && inactive == 0 {
			inactive = v
		}
		if inactive < out.MemoryUsage {
			out.MemoryUsage -= inactive
		}
		if mem.Usage.Limit < 1<<62 {
			out.MemoryLimit = mem.Usage.Limit
		}
		out.Pids = cg.PidsStats.Current
		for _, e := range cg.BlkioStats.IoServiceBytesRecursive {
			switch {
			case strings.EqualFold(e.Op, "read"):
				out.BlockRead += e.Value
			case strings.EqualFold(e.Op, "write"):
				out.BlockWrite += e.Value
			}
		}
	}
	if pid := c.Pid(); pid > 0 {
		out.NetRx, out.NetTx, _ = netDev(fmt.Sprintf("/proc/%d/net/dev", pid))
	}
	return out, nil
}

// netDev sums the bytes received and sent by the interfaces of a network
// namespace, loopback aside, from its /proc/PID/net/dev.
func netDev(path string) (rx, tx uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		var r, t, skip uint64
		// bytes packets errs drop fifo frame compressed multicast | bytes ...
		if _, err := fmt.Sscan(rest, &r, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &t); err != nil {
			continue
		}
		rx += r
		tx += t
	}
	return rx, tx, sc.Err()
}
