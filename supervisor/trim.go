package supervisor

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// trimDelay is how long the supervisor must have had no request before it
// gives memory back: the goroutines of a burst of container starts settle
// shortly after the request that made them.
const trimDelay = 500 * time.Millisecond

// scheduleTrim gives memory back once no request has run for trimDelay.
func (s *Supervisor) scheduleTrim() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trimTimer != nil {
		s.trimTimer.Reset(trimDelay)
		return
	}
	s.trimTimer = time.AfterFunc(trimDelay, func() {
		s.mu.Lock()
		busy := s.busy > 0
		s.mu.Unlock()
		if !busy {
			trimMemory()
		}
	})
}

// trimMemory returns the heap's free pages to the kernel and unmaps the
// pages of the supervisor's own binary (its code and read-only data, about
// 14 MB once a few containers have started). Those stay in the page cache:
// the next request maps back, with minor faults, the few it runs. Mapped,
// they count in the supervisor's resident memory for as long as it waits,
// which is most of its life.
func trimMemory() {
	debug.FreeOSMemory()
	var exe unix.Stat_t
	if unix.Stat("/proc/self/exe", &exe) != nil {
		return
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	defer f.Close()
	var lo, hi uint64 // the mapping being read, when it is a candidate
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "Anonymous:"); ok {
			// Only a mapping none of whose pages were ever written (a
			// relocated RELRO page is read-only now, but its content is
			// not the file's any more) can be dropped and read back.
			if hi > lo && strings.TrimSpace(v) == "0 kB" {
				_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(lo), uintptr(hi-lo), unix.MADV_DONTNEED)
			}
			lo, hi = 0, 0
			continue
		}
		if first, _, _ := strings.Cut(line, " "); !strings.HasSuffix(first, ":") {
			lo, hi = exeMapping(line, &exe) // a mapping's header line
		}
	}
}

// exeMapping returns the address range of an smaps header line that maps
// exe without write permission, or 0, 0.
func exeMapping(line string, exe *unix.Stat_t) (lo, hi uint64) {
	// start-end perms offset dev inode path
	fields := strings.Fields(line)
	if len(fields) < 6 || strings.Contains(fields[1], "w") || !strings.Contains(fields[0], "-") {
		return 0, 0
	}
	ino, err := strconv.ParseUint(fields[4], 10, 64)
	if err != nil || ino != exe.Ino {
		return 0, 0
	}
	maj, min, ok := strings.Cut(fields[3], ":")
	dmaj, err1 := strconv.ParseUint(maj, 16, 32)
	dmin, err2 := strconv.ParseUint(min, 16, 32)
	if !ok || err1 != nil || err2 != nil || unix.Mkdev(uint32(dmaj), uint32(dmin)) != exe.Dev {
		return 0, 0
	}
	start, end, ok := strings.Cut(fields[0], "-")
	lo, err1 = strconv.ParseUint(start, 16, 64)
	hi, err2 = strconv.ParseUint(end, 16, 64)
	if !ok || err1 != nil || err2 != nil || hi <= lo {
		return 0, 0
	}
	return lo, hi
}
