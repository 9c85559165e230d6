/*
 * kestrel's threads (vCPUs, event loops) on stacks of their own: 1 MiB with a guard page,
 * never backed by a transparent huge page. glibc's default stack is 8 MiB; on a host whose
 * THP setting is "always", the first touch of such a stack, when it spans an aligned 2 MiB
 * range, faults in a whole huge page: 2 MiB of RSS for the ~12 KiB a thread uses
 * (docs/performance.md, "Memory").
 */
#ifndef KESTREL_VMM_THREAD_H
#define KESTREL_VMM_THREAD_H

#include <pthread.h>
#include <stddef.h>

#define KTHREAD_STACK_SIZE (1U << 20)

struct kthread {
	pthread_t id;
	void *map; /* the stack and its guard page; NULL when no thread runs on it */
	size_t map_len;
};

/* Starts fn(arg) on a new thread; 0, or an errno value (nothing left behind). */
int kthread_start(struct kthread *t, void *(*fn)(void *), void *arg);

/* Joins a started thread and frees its stack. */
void kthread_join(struct kthread *t);

#endif
