package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// CgroupDirs returns the directories of container id's cgroup that exist,
// in every v1 hierarchy and in the v2 (or hybrid unified) one.
func CgroupDirs(cgroupParent, id string) []string {
	if cgroupParent == "" {
		cgroupParent = DefaultCgroupParent
	}
	rel := path.Join("/", cgroupParent, id)
	dirs := inHierarchies(rel)
	if d := cgroupRoot + rel; isDir(d) {
		dirs = append(dirs, d)
	}
	return dirs
}

// inHierarchies returns the directories rel that exist under the cgroup v1
// hierarchies (and the v2 one of a hybrid host): a stat per hierarchy, where
// filepath.Glob reads every directory on the way, the parent's hundreds of
// container cgroups included.
func inHierarchies(rel string) []string {
	ents, _ := os.ReadDir(cgroupRoot)
	var dirs []string
	for _, e := range ents {
		if d := cgroupRoot + "/" + e.Name() + rel; isDir(d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// CgroupChildren returns the names of the cgroups under cgroupParent, in
// any hierarchy: the IDs of containers that have (or had) one.
func CgroupChildren(cgroupParent string) []string {
	if cgroupParent == "" {
		cgroupParent = DefaultCgroupParent
	}
	parents := inHierarchies(path.Join("/", cgroupParent))
	if d := cgroupRoot + path.Join("/", cgroupParent); isDir(d) {
		parents = append(parents, d)
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range parents {
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// Purge removes whatever container id left behind, whether or not
// libcontainer's state is whole: a supervisor killed in the middle of
// Create or Start leaves a state directory without state.json (only
// exec.fifo), an init process waiting on that FIFO, and cgroups. Purge kills
// every process in the container's cgroups, removes the cgroups in every
// hierarchy and the state directory. It is idempotent.
func Purge(stateRoot, cgroupParent, id string) error {
	if id == "" || strings.ContainsAny(id, "/") {
		return fmt.Errorf("purge: invalid container ID %q", id)
	}
	var errs []error
	if c, err := Load(stateRoot, id); err == nil {
		if err := c.Destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	dirs := CgroupDirs(cgroupParent, id)
	if len(dirs) > 0 {
		if err := killCgroup(dirs); err != nil {
			errs = append(errs, err)
		}
		for _, d := range dirs {
			if err := removeCgroupDir(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := os.RemoveAll(filepath.Join(stateRoot, id)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killCgroup thaws the cgroup (a frozen process cannot die) and sends
// SIGKILL to its processes until none is left.
func killCgroup(dirs []string) error {
	for _, d := range dirs {
		if isFile(filepath.Join(d, "freezer.state")) {
			_ = os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0o644)
		}
		if isFile(filepath.Join(d, "cgroup.freeze")) {
			_ = os.WriteFile(filepath.Join(d, "cgroup.freeze"), []byte("0"), 0o644)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := cgroupPids(dirs)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of cgroup %s do not die", pids, dirs[0])
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cgroupPids lists the live processes of the cgroups (zombies are gone
// from cgroup.procs once they are reaped; until then they cannot be killed
// and do not count).
func cgroupPids(dirs []string) []int {
	seen := map[int]bool{}
	var out []int
	for _, d := range dirs {
		f, err := os.Open(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
			if err != nil || seen[pid] || isZombie(pid) {
				continue
			}
			seen[pid] = true
			out = append(out, pid)
		}
		f.Close()
	}
	return out
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// removeCgroupDir removes a cgroup directory; the kernel may need a moment
// after its last process died (a zombie still being reaped holds it).
func removeCgroupDir(d string) error {
	var err error
	for range 100 {
		err = os.Remove(d)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", d, err)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
