package supervisor

import (
	"bufio"
	"bytes"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/internal/cmalloc"
	"github.com/berthrun/berth/internal/pagedrop"
)

// trimDelay is how long the supervisor must have had no request before it
// gives memory back: the goroutines of a burst of container starts settle
// shortly after the request that made them.
const trimDelay = 500 * time.Millisecond

// scheduleTrim gives memory back once no request has run for trimDelay.
func (s *Supervisor) scheduleTrim() {
	select {
	case s.trimKick <- struct{}{}:
	default: // a kick is pending already
	}
}

// trimLoop gives memory back whenever the supervisor has been idle for
// trimDelay. One goroutine for the supervisor's life rather than a timer's
// goroutine per trim: a goroutine's exit looks its function up in the
// binary's tables, and that would map pages of them back at once.
func (s *Supervisor) trimLoop() {
	t := time.NewTimer(trimDelay)
	t.Stop()
	var tr trimmer
	for {
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-s.trimKick:
			t.Reset(trimDelay)
		case <-t.C:
			s.mu.Lock()
			busy := s.busy > 0
			s.mu.Unlock()
			if !busy {
				tr.trim()
			}
		}
	}
}

// trimmer returns the free pages of the Go and C heaps to the kernel and
// drops the pages of the supervisor's own binary (its code and read-only
// data, about 13 MB once a few containers have started). Those stay in the
// page cache: the next request maps back, with minor faults, the few it
// runs. Mapped, they count in the supervisor's resident memory for as long
// as it waits, which is most of its life.
//
// The page cache holds a binary in large folios (up to 2 MB), and a fault
// maps the whole folio it falls in: any Go code that runs after the drop,
// down to the return from it, maps megabytes back. So everything the trim
// needs (the mapping list, the garbage collection) happens first, and the
// drop itself is left to a C thread (package pagedrop) that does it once
// the process has gone quiet: this goroutine back asleep, and the
// runtime's sweeper and scavenger done after the collection.
type trimmer struct {
	ranges []pagedrop.Range
}

func (t *trimmer) trim() {
	t.ranges = t.ranges[:0]
	if smaps, err := os.ReadFile("/proc/self/smaps"); err == nil {
		t.ranges = exeRanges(smaps, t.ranges)
	}
	debug.FreeOSMemory()
	cmalloc.Trim()
	if pagedrop.WhenQuiet(t.ranges) == nil {
		return
	}
	// No thread to do it: drop from here, and lose what the return maps back.
	for _, r := range t.ranges {
		_, _, _ = syscall.RawSyscall(syscall.SYS_MADVISE, r.Start, r.End-r.Start, syscall.MADV_DONTNEED)
	}
}

// exeRanges appends to out the address ranges of the read-only mappings of
// this process's executable, from the text of /proc/self/smaps, that hold
// no written page.
func exeRanges(smaps []byte, out []pagedrop.Range) []pagedrop.Range {
	var exe unix.Stat_t
	if unix.Stat("/proc/self/exe", &exe) != nil {
		return out
	}
	var lo, hi uint64 // the mapping being read, when it is a candidate
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "Anonymous:"); ok {
			// Only a mapping none of whose pages were ever written (a
			// relocated RELRO page is read-only now, but its content is
			// not the file's any more) can be dropped and read back.
			if hi > lo && strings.TrimSpace(v) == "0 kB" {
				out = append(out, pagedrop.Range{Start: uintptr(lo), End: uintptr(hi)})
			}
			lo, hi = 0, 0
			continue
		}
		if first, _, _ := strings.Cut(line, " "); !strings.HasSuffix(first, ":") {
			lo, hi = exeMapping(line, &exe) // a mapping's header line
		}
	}
	return out
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
