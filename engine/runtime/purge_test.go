package runtime

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPurge: whatever a process killed in the middle of Create or Start
// leaves (a state directory without state.json, a running or frozen
// process, cgroups in every hierarchy), Purge removes, so that the same
// container can be created again.
func TestPurge(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start bool // the process runs
		pause bool // and is frozen
	}{
		{name: "created, never started"},
		{name: "running, state lost", start: true},
		{name: "frozen, state lost", start: true, pause: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.spec("sleep", "3600")
			c, _, err := Create(e.state, s)
			if err != nil {
				t.Fatal(err)
			}
			pid := 0
			if tc.start {
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				pid = c.Pid()
				if tc.pause {
					if err := c.Pause(); err != nil {
						t.Fatal(err)
					}
				}
				// What a kill before libcontainer saved its state leaves.
				if err := os.Remove(filepath.Join(e.state, s.ID, "state.json")); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Load(e.state, s.ID); err == nil {
				t.Fatal("Load succeeded without state.json")
			}
			if len(CgroupDirs(e.cgroupParent, s.ID)) == 0 && tc.start {
				t.Fatal("no cgroup to purge")
			}
			if err := Purge(e.state, e.cgroupParent, s.ID); err != nil {
				t.Fatal(err)
			}
			if err := Purge(e.state, e.cgroupParent, s.ID); err != nil {
				t.Fatalf("a second Purge: %v", err)
			}
			if _, err := os.Stat(filepath.Join(e.state, s.ID)); !os.IsNotExist(err) {
				t.Errorf("state directory left: %v", err)
			}
			if dirs := CgroupDirs(e.cgroupParent, s.ID); len(dirs) > 0 {
				t.Errorf("cgroups left: %v", dirs)
			}
			if pid > 0 {
				deadline := time.Now().Add(5 * time.Second)
				for !isZombie(pid) {
					if time.Now().After(deadline) {
						t.Fatalf("process %d survived Purge", pid)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			again, _, err := Create(e.state, s)
			if err != nil {
				t.Fatalf("create after Purge: %v", err)
			}
			if err := again.Destroy(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
