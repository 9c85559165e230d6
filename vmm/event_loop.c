#include "vmm/event_loop.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/seccomp.h"

static void run_calls(void *opaque, uint32_t events);

/* The loop this thread runs, if any: only its own thread may change its policy. */
static __thread struct event_loop *this_loop;

int event_loop_init(struct event_loop *el, struct kerr *err)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

	memset(el, 0, sizeof(*el));
	el->stop_fd = el->call_fd = -1;
	pthread_mutex_init(&el->call_lock, NULL);
	pthread_cond_init(&el->call_done, NULL);
	el->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (el->epfd < 0)
		return kerr_set(err, "epoll_create1: %s", strerror(errno));
	el->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (el->stop_fd < 0)
		goto fail;
	if (epoll_ctl(el->epfd, EPOLL_CTL_ADD, el->stop_fd, &ev) < 0)
		goto fail;
	el->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (el->call_fd < 0)
		goto fail;
	el->call_handler = (struct event_handler){el->call_fd, run_calls, el};
	if (event_loop_add(el, &el->call_handler, EPOLLIN, err))
		goto fail_quiet;
	return 0;
fail:
	kerr_set(err, "event loop setup: %s", strerror(errno));
fail_quiet:
	event_loop_destroy(el);
	return -1;
}

static void run_calls(void *opaque, uint32_t events)
{
	struct event_loop *el = opaque;
	uint64_t v;

	(void)events;
	if (read(el->call_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&el->call_lock);
	while (el->calls) {
		struct event_work *w = el->calls;
		bool waited = w->waited;

		el->calls = w->next;
		/* Unqueued before it runs: the work may post itself again. */
		w->queued = false;
		w->next = NULL;
		pthread_mutex_unlock(&el->call_lock);
		w->fn(w->arg);
		pthread_mutex_lock(&el->call_lock);
		if (waited) {
			w->done = true;
			pthread_cond_broadcast(&el->call_done);
		}
	}
	pthread_mutex_unlock(&el->call_lock);
}

/* Appends w unless it is queued already; returns whether it was appended. */
static bool enqueue(struct event_loop *el, struct event_work *w)
{
	struct event_work **tail;

	pthread_mutex_lock(&el->call_lock);
	if (w->queued) {
		pthread_mutex_unlock(&el->call_lock);
		return false;
	}
	for (tail = &el->calls; *tail; tail = &(*tail)->next)
		;
	*tail = w;
	w->queued = true;
	w->next = NULL;
	pthread_mutex_unlock(&el->call_lock);
	return true;
}

void event_loop_cancel(struct event_loop *el, struct event_work *w)
{
	struct event_work **tail;

	pthread_mutex_lock(&el->call_lock);
	for (tail = &el->calls; *tail && *tail != w; tail = &(*tail)->next)
		;
	if (*tail)
		*tail = w->next;
	w->queued = false;
	pthread_mutex_unlock(&el->call_lock);
}

void event_loop_call(struct event_loop *el, void (*fn)(void *arg), void *arg)
{
	struct event_work w = {.fn = fn, .arg = arg, .waited = true};
	uint64_t one = 1;

	if (!el->running || pthread_equal(pthread_self(), el->thread.id)) {
		fn(arg);
		return;
	}
	enqueue(el, &w);
	if (write(el->call_fd, &one, sizeof(one)) != sizeof(one)) {
		/* Cannot happen for an eventfd short of overflow; never leave w queued. */
		event_loop_cancel(el, &w);
		fn(arg);
		return;
	}
	pthread_mutex_lock(&el->call_lock);
	while (!w.done)
		pthread_cond_wait(&el->call_done, &el->call_lock);
	pthread_mutex_unlock(&el->call_lock);
}

int event_loop_add(struct event_loop *el, struct event_handler *h, uint32_t events,
		   struct kerr *err)
{
	struct epoll_event ev = {.events = events, .data.ptr = h};

	if (epoll_ctl(el->epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0)
		return kerr_set(err, "epoll_ctl(add fd %d): %s", h->fd, strerror(errno));
	return 0;
}

int event_loop_del(struct event_loop *el, struct event_handler *h)
{
	return epoll_ctl(el->epfd, EPOLL_CTL_DEL, h->fd, NULL);
}

void event_loop_watch(struct event_loop *el, struct event_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = &w->h};

	if (w->h.fd < 0 || !el) {
		w->registered = false;
		w->events = 0;
		return;
	}
	if (!events) {
		if (w->registered)
			event_loop_del(el, &w->h);
		w->registered = false;
	} else if (!w->registered) {
		if (event_loop_add(el, &w->h, events, NULL) == 0)
			w->registered = true;
	} else if (events != w->events) {
		if (epoll_ctl(el->epfd, EPOLL_CTL_MOD, w->h.fd, &ev) < 0) {
			event_loop_del(el, &w->h);
			w->registered = false;
		}
	}
	w->events = w->registered ? events : 0;
}

/* Applies the scheduling class el->policy chose to the calling thread, the loop's own. */
static void event_loop_apply_policy(struct event_loop *el)
{
	struct sched_param sp = {0};

	if (sched_setscheduler(0, el->policy.other ? SCHED_OTHER : SCHED_BATCH, &sp) < 0)
		el->batch_failed = true;
}

static void *event_loop_thread(void *arg)
{
	struct event_loop *el = arg;
	struct epoll_event evs[16];

	/*
	 * SCHED_BATCH (the network loop, to start with): a wake-up of this thread never preempts
	 * a running vCPU thread. Otherwise, on a busy host CPU, every TX kick switches to us at
	 * once, we find one or two frames, interrupt the guest for them and sleep again: 2-3
	 * frames per kick and an interrupt for every other frame (docs/performance.md, Network).
	 * Left to run until the vCPU blocks or its slice ends, the guest fills the ring meanwhile
	 * (EVENT_IDX: one kick per device pass) and we drain it in one go. With a CPU to spare we
	 * run at once anyway. A guest that only ping-pongs gains nothing from it, so
	 * event_loop_note_pass turns it off and on. Not for the main loop: a disk completion
	 * would wait for the vCPU's slice too, which multiplies QD1 tail latency
	 * (docs/performance.md, Block), nor for tap input, which would wait for a busy host
	 * sender's slice while the guest idles for it (the NICs' receive loop, vmm/vm.h).
	 * Failing to set it only costs speed.
	 */
	this_loop = el;
	if (el->name)
		pthread_setname_np(pthread_self(), el->name);
	if (el->batch)
		event_loop_apply_policy(el); /* the policy starts out batching */
	if (sandbox_enter(SANDBOX_EVENT_LOOP))
		return NULL;
	for (;;) {
		int n = epoll_wait(el->epfd, evs, 16, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct event_handler *h = evs[i].data.ptr;
			if (!h)
				return NULL; /* the stop eventfd */
			h->fn(h->opaque, evs[i].events);
		}
	}
	return NULL;
}

void event_loop_note_pass(struct event_loop *el, unsigned int items)
{
	if (this_loop != el || !el->batch || el->batch_failed)
		return;
	if (batch_policy_pass(&el->policy, items))
		event_loop_apply_policy(el);
}

int event_loop_start(struct event_loop *el, struct kerr *err)
{
	int rc = kthread_start(&el->thread, event_loop_thread, el);

	if (rc)
		return kerr_set(err, "cannot start the event loop thread: %s", strerror(rc));
	el->running = 1;
	return 0;
}

void event_loop_stop(struct event_loop *el)
{
	uint64_t one = 1;

	if (!el->running)
		return;
	if (write(el->stop_fd, &one, sizeof(one)) != sizeof(one))
		return;
	kthread_join(&el->thread);
	el->running = 0;
}

void event_loop_destroy(struct event_loop *el)
{
	event_loop_stop(el);
	if (el->stop_fd >= 0)
		close(el->stop_fd);
	if (el->call_fd >= 0)
		close(el->call_fd);
	if (el->epfd >= 0)
		close(el->epfd);
	el->stop_fd = el->epfd = el->call_fd = -1;
}

void event_loop_post(struct event_loop *el, struct event_work *w)
{
	uint64_t one = 1;

	/* A failed write leaves the work queued for the next wake-up; nothing is lost. */
	if (enqueue(el, w) && write(el->call_fd, &one, sizeof(one)) != sizeof(one))
		return;
}

int event_loop_run_once(struct event_loop *el, int timeout_ms)
{
	struct epoll_event evs[16];
	int n = epoll_wait(el->epfd, evs, 16, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -1;
	for (int i = 0; i < n; i++) {
		struct event_handler *h = evs[i].data.ptr;
		if (h)
			h->fn(h->opaque, evs[i].events);
	}
	return n;
}
