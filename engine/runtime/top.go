package runtime

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Process is one process of a container as `top` shows it.
type Process struct {
	UID  string `json:"uid"`
	PID  int    `json:"pid"`
	PPID string `json:"ppid"`
	Cmd  string `json:"cmd"`
}

// Top lists the container's processes by PID, with what /proc says of
// each. A process that exits meanwhile is listed with empty fields.
func (c *Container) Top() ([]Process, error) {
	pids, err := c.Processes()
	if err != nil {
		return nil, err
	}
	sort.Ints(pids)
	out := make([]Process, 0, len(pids))
	for _, pid := range pids {
		uid, ppid := procStatus(pid)
		out = append(out, Process{UID: uid, PID: pid, PPID: ppid, Cmd: procCmdline(pid)})
	}
	return out, nil
}

// procStatus reads a process's real uid and parent PID from /proc.
func procStatus(pid int) (uid, ppid string) {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "Uid":
			uid = f[0]
		case "PPid":
			ppid = f[0]
		}
	}
	return uid, ppid
}

func procCmdline(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}
