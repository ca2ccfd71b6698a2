// Package cmalloc tunes and trims the C library's allocator (glibc's
// malloc), which a berth process uses through cgo: libseccomp compiling a
// seccomp filter, and runtime/cgo starting every thread.
package cmalloc

/*
#include <malloc.h>

static int berth_one_arena(void) { return mallopt(M_ARENA_MAX, 1); }
static int berth_malloc_trim(void) { return malloc_trim(0); }
*/
import "C"

// OneArena makes every thread that has not yet allocated share the main
// arena. By default glibc gives each thread an arena of its own (a 132 KB
// mapping of which a few pages stay resident, more where a filter was
// compiled), and a Go process has a thread for every system call that
// ever blocked at once; what it frees there is given back only by Trim.
// It reports whether the C library took the setting.
func OneArena() bool { return C.berth_one_arena() == 1 }

// Trim gives the C heap's free pages back to the kernel (malloc_trim):
// free memory below the top of an arena otherwise stays resident. It
// reports whether any was given back.
func Trim() bool { return C.berth_malloc_trim() == 1 }
