// Package pagedrop drops the pages of a process's own mappings
// (madvise MADV_DONTNEED) from a thread of its own, outside the Go runtime,
// once the process has gone quiet.
//
// It is for a process about to sleep that wants the pages of its
// executable out of its resident set. Dropping them from Go does not work
// well: the page cache holds a binary in large folios (up to 2 MB), a fault
// maps the whole folio it falls in, and whatever Go code runs after the
// drop (at the least, the code returning from it and parking the
// goroutine; then the runtime's sweeper and scavenger after a collection)
// maps its folios back at once. A C thread that waits until the process
// has used no CPU for a moment and has no thread runnable, drops the pages
// and exits touches only a few small pages of the C library.
package pagedrop

/*
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BERTH_PAGEDROP_MAX 16

// One drop at a time, in static storage: the dropping thread never calls
// malloc, which would give it an arena of its own.
static struct {
	int busy; // a drop is scheduled; written with __atomic builtins
	int n;
	uintptr_t r[BERTH_PAGEDROP_MAX][2];
} berth_pagedrop;

// The process is quiet once a window of BERTH_PAGEDROP_WINDOW_NS has passed
// in which its other threads together used less than BERTH_PAGEDROP_BUSY_NS
// of CPU and at whose end none of them is runnable: on a busy machine a
// thread waiting for a CPU uses none. The first drop waits for that
// BERTH_PAGEDROP_FIRST windows at most. Then, until BERTH_PAGEDROP_WINDOWS
// windows have passed, a drop is done again whenever the other threads ran
// (the runtime's sysmon, scavenger or sweeper waking a little later) and are
// quiet again.
#define BERTH_PAGEDROP_WINDOW_NS 20000000L
#define BERTH_PAGEDROP_BUSY_NS 200000L
#define BERTH_PAGEDROP_FIRST 100
#define BERTH_PAGEDROP_WINDOWS 150

static long long berth_ns(clockid_t clock) {
	struct timespec ts;
	if (clock_gettime(clock, &ts) != 0)
		return -1;
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// berth_others is the CPU time used by the process's threads but the
// calling one, or -1.
static long long berth_others(void) {
	long long all = berth_ns(CLOCK_PROCESS_CPUTIME_ID), self = berth_ns(CLOCK_THREAD_CPUTIME_ID);
	return all < 0 || self < 0 ? -1 : all - self;
}

// berth_runnable says whether a thread of the process other than the
// calling one is running or waiting for a CPU (state R in
// /proc/self/task/TID/stat). It reads with system calls into static
// buffers: no malloc, no stdio.
static int berth_runnable(void) {
	static char dents[8192], path[64], stat[512];
	pid_t self = (pid_t)syscall(SYS_gettid);
	int dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return 0;
	int busy = 0;
	long n;
	while (!busy && (n = syscall(SYS_getdents64, dir, dents, sizeof dents)) > 0) {
		for (long off = 0; off < n && !busy;) {
			struct dirent64 *d = (struct dirent64 *)(dents + off);
			off += d->d_reclen;
			if (d->d_name[0] < '0' || d->d_name[0] > '9' || atoi(d->d_name) == self)
				continue;
			snprintf(path, sizeof path, "/proc/self/task/%s/stat", d->d_name);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			ssize_t len = read(fd, stat, sizeof stat - 1);
			close(fd);
			if (len <= 0)
				continue;
			stat[len] = 0;
			// pid (comm) state ...: comm may hold ')'; the state follows the last.
			char *p = strrchr(stat, ')');
			if (p && p[1] == ' ' && p[2] == 'R')
				busy = 1;
		}
	}
	close(dir);
	return busy;
}

static void berth_pagedrop_drop(void) {
	for (int i = 0; i < berth_pagedrop.n; i++)
		madvise((void *)berth_pagedrop.r[i][0], berth_pagedrop.r[i][1] - berth_pagedrop.r[i][0], MADV_DONTNEED);
}

static void *berth_pagedrop_run(void *arg) {
	(void)arg;
	long long before = berth_others(), dropped = -1; // others' CPU time at the last drop
	for (int i = 0; i < BERTH_PAGEDROP_WINDOWS; i++) {
		struct timespec w = {0, BERTH_PAGEDROP_WINDOW_NS};
		while (nanosleep(&w, &w) != 0 && errno == EINTR)
			;
		long long now = berth_others();
		int quiet = before >= 0 && now >= 0 && now - before < BERTH_PAGEDROP_BUSY_NS && !berth_runnable();
		if (dropped < 0 && (quiet || i + 1 == BERTH_PAGEDROP_FIRST)) {
			berth_pagedrop_drop();
			dropped = berth_others();
		} else if (dropped >= 0 && quiet && now != dropped) {
			berth_pagedrop_drop(); // what ran since may have mapped pages back
			dropped = berth_others();
		}
		before = berth_others();
	}
	if (dropped < 0)
		berth_pagedrop_drop();
	__atomic_store_n(&berth_pagedrop.busy, 0, __ATOMIC_RELEASE);
	return NULL;
}

// berth_pagedrop_quiet returns 0 when a thread will drop the n ranges r
// (start, end pairs) once the process is quiet, or when one already will;
// else an errno.
static int berth_pagedrop_quiet(uintptr_t *r, int n) {
	if (n > BERTH_PAGEDROP_MAX)
		return E2BIG;
	if (__atomic_exchange_n(&berth_pagedrop.busy, 1, __ATOMIC_ACQUIRE))
		return 0; // the pending drop covers the same mappings
	berth_pagedrop.n = n;
	for (int i = 0; i < n; i++) {
		berth_pagedrop.r[i][0] = r[2 * i];
		berth_pagedrop.r[i][1] = r[2 * i + 1];
	}
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
	"unsafe"
)

// Range is a range of addresses [Start, End), page aligned.
type Range struct{ Start, End uintptr }

// WhenQuiet drops the pages of ranges from a thread of its own, once the
// process has used (nearly) no CPU for 20 ms and none of its threads is
// runnable, or after 2 s whatever it does, and returns at once. For 3 s in
// all, the thread drops them again whenever the process ran meanwhile and
// is quiet again. A drop already pending covers this one: the caller
// asks for the same ranges each time. The caller should go to sleep soon
// after; what it runs after the drop it maps back.
func WhenQuiet(ranges []Range) error {
	if len(ranges) == 0 {
		return nil
	}
	r := make([]C.uintptr_t, 0, 2*len(ranges))
	for _, x := range ranges {
		r = append(r, C.uintptr_t(x.Start), C.uintptr_t(x.End))
	}
	if errno := C.berth_pagedrop_quiet((*C.uintptr_t)(unsafe.Pointer(&r[0])), C.int(len(ranges))); errno != 0 {
		return syscall.Errno(errno)
	}
	return nil
}
