/* virtio-net with its data path in the kernel: handing the rings to vhost-net and back. */
#include "virtio/net_priv.h"

static void on_own_call(void *opaque, uint32_t events)
{
	struct own_call *oc = opaque;
	struct virtio_dev *d = &oc->n->dev;
	uint64_t v;

	(void)events;
	/* vhost already applied interrupt suppression before signalling. */
	if (read(oc->h.fd, &v, sizeof(v)) == sizeof(v) && d->transport)
		d->transport->signal_queue(d, oc->q);
}

void net_own_call_close(struct net_dev *n, struct own_call *oc)
{
	if (oc->h.fd < 0)
		return;
	event_loop_del(n->loop, &oc->h);
	close(oc->h.fd);
	oc->h.fd = -1;
}

/* The eventfd vhost signals for queue q: the transport's irqfd, or one we poll ourselves. */
static int call_fd_for(struct net_dev *n, struct own_call *oc, uint16_t q)
{
	const struct virtio_transport_ops *t = n->dev.transport;
	int fd = t->call_fd(&n->dev, q);

	if (fd >= 0) {
		net_own_call_close(n, oc);
		return fd;
	}
	if (oc->h.fd >= 0)
		return oc->h.fd;
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -1;
	oc->h = (struct event_handler){fd, on_own_call, oc};
	oc->n = n;
	oc->q = q;
	if (event_loop_add(n->loop, &oc->h, EPOLLIN, NULL) < 0) {
		close(fd);
		oc->h.fd = -1;
		return -1;
	}
	return fd;
}

static void vhost_stop_pair(struct net_dev *n, struct net_pair *p)
{
	struct virtio_dev *d = &n->dev;

	if (p->vhost_on)
		net_vhost_set_backend(&n->vhost, p->index, -1, NULL);
	p->vhost_on = false;
	for (unsigned int i = 0; i < 2; i++) {
		uint16_t q = (uint16_t)(2 * p->index + i), base = 0;

		if (p->kick_taken[i]) {
			if (net_vhost_stop_vring(&n->vhost, p->index, i, &base) == 0)
				d->vqs[q].last_avail_idx = base;
			d->transport->poll_kicks(d, q, true);
			p->kick_taken[i] = false;
		}
		net_own_call_close(n, &p->call[i]);
	}
}

void net_dev_vhost_stop(struct net_dev *n)
{
	for (unsigned int i = 0; i < n->max_pairs; i++)
		vhost_stop_pair(n, &n->pairs[i]);
	n->vhost_running = false;
}

static int vhost_start_pair(struct net_dev *n, struct net_pair *p, uint64_t features,
			    const struct vhost_memory *mem, struct kerr *err)
{
	struct virtio_dev *d = &n->dev;
	const struct virtio_transport_ops *t = d->transport;

	if (net_vhost_setup(&n->vhost, p->index, features, mem, err) < 0)
		return -1;
	for (unsigned int i = 0; i < 2; i++) {
		uint16_t q = (uint16_t)(2 * p->index + i);
		struct virtqueue *vq = &d->vqs[q];
		struct net_vhost_vring r = {
		    .index = i, .num = vq->size, .base = vq->last_avail_idx};

		net_vhost_vring_addr(&r.addr, i, vq);
		/* The kernel reads the kick eventfd from now on, not our event loop. */
		t->poll_kicks(d, q, false);
		p->kick_taken[i] = true;
		r.kick_fd = t->kick_fd(d, q);
		r.call_fd = call_fd_for(n, &p->call[i], q);
		if (r.kick_fd < 0 || r.call_fd < 0)
			return kerr_set(err, "no kick or call eventfd for queue %u", q);
		if (net_vhost_start_vring(&n->vhost, p->index, &r, err) < 0)
			return -1;
	}
	return 0;
}

/*
 * Hands every data pair to vhost-net. Returns 0 on success, 1 if vhost could not start and
 * nothing was handed over (serve the pairs in kestrel), -1 if it failed after a pair was
 * running (the rings are no longer ours to continue: NEEDS_RESET).
 */
int net_dev_vhost_start(struct net_dev *n)
{
	struct virtio_dev *d = &n->dev;
	const struct virtio_transport_ops *t = d->transport;
	struct kerr err = {.msg = ""};
	struct vhost_memory *mem = NULL;
	uint64_t features = net_vhost_features(d->guest_features, n->vhost.features);
	bool any = false;
	int rc = 1;

	if (!t || !t->kick_fd || !t->poll_kicks || !t->call_fd) {
		kerr_set(&err, "the transport has no kick/call eventfds");
		goto fail;
	}
	mem = net_vhost_mem_table(d->mem);
	if (!mem) {
		kerr_set(&err, "cannot build the memory table");
		goto fail;
	}
	for (unsigned int i = 0; i < n->data_pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		if (!d->vqs[rx_q(i)].ready || !d->vqs[tx_q(i)].ready)
			continue; /* the driver does not use this pair */
		if (vhost_start_pair(n, p, features, mem, &err) < 0)
			goto fail;
	}
	/* All rings are set up: now let the kernel run them. */
	for (unsigned int i = 0; i < n->data_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		uint64_t one = 1;

		if (!p->kick_taken[0])
			continue;
		if (net_vhost_set_backend(&n->vhost, i, n->tap.fds[i], &err) < 0) {
			rc = any ? -1 : 1;
			goto fail;
		}
		p->vhost_on = true;
		any = true;
		/* Buffers made available before the hand-over had their kicks eaten: kick once. */
		for (unsigned int q = 0; q < 2; q++)
			if (write(t->kick_fd(d, (uint16_t)(2 * i + q)), &one, sizeof(one)) < 0)
				n->stats.vhost_failures++;
	}
	free(mem);
	n->vhost_running = true;
	return 0;
fail:
	free(mem);
	n->stats.vhost_failures++;
	if (t && t->poll_kicks)
		net_dev_vhost_stop(n);
	snprintf(n->backend, sizeof(n->backend), "tap (vhost-net failed to start: %.200s)",
		 err.msg);
	return rc;
}

void net_queue_irq_changed(struct virtio_dev *d, uint16_t q)
{
	struct net_dev *n = to_net(d);
	struct net_pair *p;
	unsigned int i = q % 2;
	int fd;

	lock(n);
	if (!n->vhost_running || q >= 2 * n->data_pairs)
		goto out;
	p = &n->pairs[q / 2];
	if (!p->kick_taken[i])
		goto out;
	fd = call_fd_for(n, &p->call[i], q);
	if (fd < 0 || net_vhost_set_call(&n->vhost, p->index, i, fd) < 0) {
		n->stats.vhost_failures++;
		goto out;
	}
	/* One raised on the old fd during the switch may be lost: a spurious one is harmless. */
	n->irqs.queues |= 1ULL << q;
out:
	unlock(n);
}
