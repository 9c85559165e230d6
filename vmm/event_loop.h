/*
 * The one event-loop thread (epoll) that owns device back-end work: terminal input today,
 * device back ends later. Callbacks run on that thread only.
 */
#ifndef KESTREL_EVENT_LOOP_H
#define KESTREL_EVENT_LOOP_H

#include <pthread.h>
#include <stdint.h>

#include "vmm/error.h"

typedef void (*event_fn)(void *opaque, uint32_t events);

struct event_loop {
	int epfd;
	int stop_fd; /* eventfd: written to end the loop */
	pthread_t thread;
	int running;
};

int event_loop_init(struct event_loop *el, struct kerr *err);
/* Registers fd for events (EPOLLIN...); the handle must stay valid while registered. */
struct event_handler {
	int fd;
	event_fn fn;
	void *opaque;
};
int event_loop_add(struct event_loop *el, struct event_handler *h, uint32_t events,
		   struct kerr *err);
int event_loop_del(struct event_loop *el, struct event_handler *h);
int event_loop_start(struct event_loop *el, struct kerr *err);
void event_loop_stop(struct event_loop *el); /* joins the thread */
void event_loop_destroy(struct event_loop *el);

#endif
