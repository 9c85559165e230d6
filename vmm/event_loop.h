/*
 * An event-loop thread (epoll) that owns device back-end work. A VM has three (vmm/vm.h): the
 * main loop (terminal, console, disks), the network loop, which runs as SCHED_BATCH while the
 * guests stream (vmm/batch_policy.h), and the NICs' receive loop (tap input and receive-queue
 * kicks).
 * Callbacks run on their loop's thread only.
 */
#ifndef KESTREL_EVENT_LOOP_H
#define KESTREL_EVENT_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/batch_policy.h"
#include "vmm/error.h"
#include "vmm/thread.h"

typedef void (*event_fn)(void *opaque, uint32_t events);

/* Registers fd for events (EPOLLIN...); the handle must stay valid while registered. */
struct event_handler {
	int fd;
	event_fn fn;
	void *opaque;
};

/*
 * Work queued for the event-loop thread. Embedded in its owner, never allocated: a piece of
 * work already queued is not queued again, so however often a guest repeats the write that
 * posts it, the queue cannot grow.
 */
struct event_work {
	void (*fn)(void *arg);
	void *arg;
	bool queued; /* on the loop's list; guarded by call_lock */
	bool waited; /* event_loop_call's own: a thread waits for done */
	bool done;
	struct event_work *next;
};

static inline void event_work_init(struct event_work *w, void (*fn)(void *arg), void *arg)
{
	*w = (struct event_work){.fn = fn, .arg = arg};
}

/*
 * A handler whose interest changes over time (read only while the guest has buffers, write
 * only while output is pending): event_loop_watch() adds, modifies or removes it as needed.
 */
struct event_watch {
	struct event_handler h;
	uint32_t events; /* what it is registered for now; 0 when not registered */
	bool registered;
};

struct event_loop {
	int epfd;
	int stop_fd; /* eventfd: written to end the loop */
	int call_fd; /* eventfd: a cross-thread call is waiting */
	struct kthread thread;
	int running;
	const char *name;  /* set before event_loop_start: the thread's name (ps, /proc) */
	bool batch;	   /* set before event_loop_start: event_loop_note_pass */
	bool batch_failed; /* a policy change refused (speed only; for -v): no more changes */
	struct batch_policy policy; /* the loop thread's own */
	pthread_mutex_t call_lock;
	pthread_cond_t call_done;
	struct event_work *calls; /* pending work, in order */
	struct event_handler call_handler;
};

int event_loop_init(struct event_loop *el, struct kerr *err);
int event_loop_add(struct event_loop *el, struct event_handler *h, uint32_t events,
		   struct kerr *err);
int event_loop_del(struct event_loop *el, struct event_handler *h);
/* Makes w's registration match events (0: unregistered). A NULL loop or fd < 0 does nothing. */
void event_loop_watch(struct event_loop *el, struct event_watch *w, uint32_t events);
int event_loop_start(struct event_loop *el, struct kerr *err);

/*
 * For a loop with batch set: one pass over its batched work (a NIC's transmit queue) found
 * items. Switches the loop's thread between SCHED_BATCH and SCHED_OTHER as vmm/batch_policy.h
 * says. Does nothing on any other thread (tests, fuzzers, inline event_loop_call work).
 */
void event_loop_note_pass(struct event_loop *el, unsigned int items);

void event_loop_stop(struct event_loop *el); /* joins the thread */
void event_loop_destroy(struct event_loop *el);

/*
 * Runs fn(arg) on the event-loop thread and waits for it: how vCPU threads hand device state
 * changes (reset, activate) to the thread that owns the device. Runs fn directly when called on
 * the loop thread or when the loop is not running.
 */
void event_loop_call(struct event_loop *el, void (*fn)(void *arg), void *arg);

/*
 * Queues w to run on the event-loop thread later, without waiting (for callers that hold locks
 * the work needs). Does nothing while w is still queued. w must outlive the loop's next pass.
 */
void event_loop_post(struct event_loop *el, struct event_work *w);
/* Takes w off the queue if it is there (before its owner is freed). */
void event_loop_cancel(struct event_loop *el, struct event_work *w);

/*
 * One non-blocking pass on the calling thread: dispatches every handler that is ready and the
 * queued work. For tests and fuzzers that drive a loop they never started. Returns the
 * number of handlers run, or -1 when epoll_wait fails.
 */
int event_loop_run_once(struct event_loop *el, int timeout_ms);

#endif
