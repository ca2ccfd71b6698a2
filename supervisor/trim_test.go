package supervisor

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestExeRanges checks that the trim finds this process's executable among
// its own mappings, and only read-only, unwritten ones of it.
func TestExeRanges(t *testing.T) {
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	maps := map[uintptr]string{} // start -> header line
	for _, line := range strings.Split(string(smaps), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasSuffix(f[0], ":") || !strings.Contains(f[0], "-") {
			continue
		}
		start, _, _ := strings.Cut(f[0], "-")
		lo, err := strconv.ParseUint(start, 16, 64)
		if err != nil {
			t.Fatalf("smaps line %q: %v", line, err)
		}
		maps[uintptr(lo)] = line
	}
	ranges := exeRanges(smaps, nil)
	if len(ranges) == 0 {
		t.Fatalf("no mapping of %s found", exe)
	}
	for _, r := range ranges {
		line := maps[r.Start]
		f := strings.Fields(line)
		if len(f) < 6 || f[len(f)-1] != exe || strings.Contains(f[1], "w") {
			t.Errorf("range %#x-%#x is %q, want a read-only mapping of %s", r.Start, r.End, line, exe)
		}
	}
}
