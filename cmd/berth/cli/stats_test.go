package cli

import (
	"testing"
	"time"

	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/supervisor"
)

func TestStatsRow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	id := "0123456789abcdef0123456789abcdef"
	prev := supervisor.ContainerStats{ID: id, Running: true, Time: t0, Stats: runtime.Stats{CPUNanos: 1e9}}
	tests := []struct {
		name string
		cur  supervisor.ContainerStats
		want statsRow
	}{
		{"limited", supervisor.ContainerStats{ID: id, Name: "p-web-1", Running: true, Time: t0.Add(time.Second),
			Stats: runtime.Stats{CPUNanos: 1.5e9, MemoryUsage: 16 << 20, MemoryLimit: 64 << 20, Pids: 3, NetRx: 1500, NetTx: 0, BlockRead: 2e6, BlockWrite: 0}},
			statsRow{ID: "0123456789ab", Container: "0123456789ab", Name: "p-web-1", CPUPerc: "50.00%", MemUsage: "16MiB / 64MiB", MemPerc: "25.00%",
				NetIO: "1.5kB / 0B", BlockIO: "2MB / 0B", PIDs: "3"}},
		{"unlimited is the host's memory", supervisor.ContainerStats{ID: id, Name: "p-web-1", Running: true, Time: t0.Add(time.Second),
			Stats: runtime.Stats{CPUNanos: 1e9, MemoryUsage: 1 << 30}},
			statsRow{ID: "0123456789ab", Container: "0123456789ab", Name: "p-web-1", CPUPerc: "0.00%", MemUsage: "1GiB / 4GiB", MemPerc: "25.00%",
				NetIO: "0B / 0B", BlockIO: "0B / 0B", PIDs: "0"}},
		{"stopped", supervisor.ContainerStats{ID: id, Name: "p-web-1"},
			statsRow{ID: "0123456789ab", Container: "0123456789ab", Name: "p-web-1", CPUPerc: "--", MemUsage: "-- / --", MemPerc: "--",
				NetIO: "--", BlockIO: "--", PIDs: "--"}},
	}
	for _, tt := range tests {
		if got := statsRowOf(tt.cur, prev, 4<<30, false); got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}
