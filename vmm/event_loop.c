#include "vmm/event_loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

int event_loop_init(struct event_loop *el, struct kerr *err)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

	memset(el, 0, sizeof(*el));
	el->stop_fd = -1;
	el->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (el->epfd < 0)
		return kerr_set(err, "epoll_create1: %s", strerror(errno));
	el->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (el->stop_fd < 0)
		goto fail;
	if (epoll_ctl(el->epfd, EPOLL_CTL_ADD, el->stop_fd, &ev) < 0)
		goto fail;
	return 0;
fail:
	kerr_set(err, "event loop setup: %s", strerror(errno));
	event_loop_destroy(el);
	return -1;
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

static void *event_loop_thread(void *arg)
{
	struct event_loop *el = arg;
	struct epoll_event evs[16];

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

int event_loop_start(struct event_loop *el, struct kerr *err)
{
	int rc = pthread_create(&el->thread, NULL, event_loop_thread, el);

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
	pthread_join(el->thread, NULL);
	el->running = 0;
}

void event_loop_destroy(struct event_loop *el)
{
	event_loop_stop(el);
	if (el->stop_fd >= 0)
		close(el->stop_fd);
	if (el->epfd >= 0)
		close(el->epfd);
	el->stop_fd = el->epfd = -1;
}
