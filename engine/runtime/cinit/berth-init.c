/*
 * berth-init: a container's PID 1 for compose's `init: true`.
 *
 * It runs one command, forwards every signal it can catch to it, reaps
 * every zombie the kernel re-parents to it, and exits with the command's
 * status (its exit code, or 128 + the signal that killed it). It is the C
 * twin of engine/runtime/internal/reaper: a few hundred kilobytes of memory
 * per container instead of a Go runtime's few megabytes.
 *
 * Usage (as the engine writes it): berth-init __reaper -- COMMAND [ARG...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int i = 1;
	if (i < argc && strcmp(argv[i], "__reaper") == 0)
		i++;
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	if (i >= argc) {
		fprintf(stderr, "berth-init: no command\n");
		return 127;
	}

	/* Signals are taken with sigwaitinfo, never by handlers. */
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);

	pid_t child = fork();
	if (child < 0) {
		perror("berth-init: fork");
		return 126;
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(argv[i], argv + i);
		fprintf(stderr, "berth-init: %s: %s\n", argv[i], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}

	/* No timeout: a SIGCHLD stays pending while blocked, so an exit during
	 * the reaping loop wakes the next wait at once, and an idle init never
	 * wakes up for nothing. */
	int status = 0, done = 0;
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&all, &info);
		if (sig > 0 && sig != SIGCHLD)
			kill(child, sig); /* the command decides what a signal means */
		/* Reap everything that has exited, ours or adopted. */
		for (;;) {
			int st;
			pid_t p = waitpid(-1, &st, WNOHANG);
			if (p <= 0)
				break;
			if (p == child) {
				status = st;
				done = 1;
			}
		}
		if (done)
			break;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
