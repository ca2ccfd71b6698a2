// Package pagedrop drops the pages of a process's own mappings
// (madvise MADV_DONTNEED) from a thread of its own, outside the Go runtime,
// a moment later.
//
// It is for a process about to sleep that wants the pages of its
// executable out of its resident set. Dropping them from Go does not work
// well: the page cache holds a binary in large folios (up to 2 MB), a fault
// maps the whole folio it falls in, and whatever Go code runs after the
// drop (at the least, the code returning from it and parking the
// goroutine) maps its folios back at once. A C thread that waits until the
// Go side has gone to sleep, drops the pages and exits touches only a few
// small pages of the C library.
package pagedrop

/*
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#define BERTH_PAGEDROP_MAX 16

// One drop at a time, in static storage: the dropping thread never calls
// malloc, which would give it an arena of its own.
static struct {
	int busy; // a drop is scheduled; written with __atomic builtins
	struct timespec delay;
	int n;
	uintptr_t r[BERTH_PAGEDROP_MAX][2];
} berth_pagedrop;

static void *berth_pagedrop_run(void *arg) {
	(void)arg;
	while (nanosleep(&berth_pagedrop.delay, &berth_pagedrop.delay) != 0 && errno == EINTR)
		;
	for (int i = 0; i < berth_pagedrop.n; i++)
		madvise((void *)berth_pagedrop.r[i][0], berth_pagedrop.r[i][1] - berth_pagedrop.r[i][0], MADV_DONTNEED);
	__atomic_store_n(&berth_pagedrop.busy, 0, __ATOMIC_RELEASE);
	return NULL;
}

// berth_pagedrop_after returns 0 when a thread will drop the n ranges r
// (start, end pairs) after delay_ns, or when one already will; else an
// errno.
static int berth_pagedrop_after(uintptr_t *r, int n, long delay_ns) {
	if (n > BERTH_PAGEDROP_MAX)
		return E2BIG;
	if (__atomic_exchange_n(&berth_pagedrop.busy, 1, __ATOMIC_ACQUIRE))
		return 0; // the pending drop covers the same mappings
	berth_pagedrop.n = n;
	for (int i = 0; i < n; i++) {
		berth_pagedrop.r[i][0] = r[2 * i];
		berth_pagedrop.r[i][1] = r[2 * i + 1];
	}
	berth_pagedrop.delay.tv_sec = delay_ns / 1000000000L;
	berth_pagedrop.delay.tv_nsec = delay_ns % 1000000000L;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN);
	// The thread starts with every signal blocked, so that none meant for
	// the Go runtime's threads lands on it.
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	int err = pthread_create(&t, &attr, berth_pagedrop_run, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (err != 0)
		__atomic_store_n(&berth_pagedrop.busy, 0, __ATOMIC_RELEASE);
	return err;
}
*/
import "C"

import (
	"syscall"
	"time"
	"unsafe"
)

// Range is a range of addresses [Start, End), page aligned.
type Range struct{ Start, End uintptr }

// After drops the pages of ranges after delay, from a thread of its own,
// and returns at once. A drop already scheduled and not yet done covers
// this one: the caller asks for the same ranges each time. The caller
// must not run much after After returns, or it maps back what it runs.
func After(delay time.Duration, ranges []Range) error {
	if len(ranges) == 0 {
		return nil
	}
	r := make([]C.uintptr_t, 0, 2*len(ranges))
	for _, x := range ranges {
		r = append(r, C.uintptr_t(x.Start), C.uintptr_t(x.End))
	}
	if errno := C.berth_pagedrop_after((*C.uintptr_t)(unsafe.Pointer(&r[0])), C.int(len(ranges)), C.long(delay)); errno != 0 {
		return syscall.Errno(errno)
	}
	return nil
}
