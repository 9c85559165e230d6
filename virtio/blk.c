/*
 * virtio-blk device model (VIRTIO 1.2 §5.2). Validates each request the guest makes, turns it
 * into a struct blk_req and hands it to the I/O engine; completion writes the status byte and
 * pushes the chain back.
 *
 * Threads: queue_notify and the engine's completion eventfd run on the event-loop thread;
 * activate, reset and the config space are called by the transport from a vCPU thread. One
 * mutex (b->lock) covers the queues, the requests and the engine, so reset can stop the event
 * loop's work and wait for in-flight I/O. Transport callbacks that might call back into the
 * device (needs_reset) are made after the lock is dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <unistd.h>

#include "virtio/blk_priv.h"

/* The engine's eventfd: completions are ready. */
static void blk_event(void *opaque, uint32_t events)
{
	struct blk_dev *b = opaque;

	(void)events;
	pthread_mutex_lock(&b->lock);
	b->be.ops->reap(&b->be, false);
	blk_notify_pending(b);
	pthread_mutex_unlock(&b->lock);
}

static void blk_free_queues(struct blk_dev *b)
{
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		free(b->queues[q].reqs);
		free(b->queues[q].iovs);
		memset(&b->queues[q], 0, sizeof(b->queues[q]));
	}
}

/* Waits for every request in flight; with b->stopping set, their results are dropped. */
static void blk_drain_locked(struct blk_dev *b)
{
	while (b->inflight)
		b->be.ops->reap(&b->be, true);
}

void virtio_blk_wait_idle(struct virtio_dev *d)
{
	struct blk_dev *b = to_blk(d);

	pthread_mutex_lock(&b->lock);
	blk_drain_locked(b);
	blk_notify_pending(b);
	pthread_mutex_unlock(&b->lock);
}

static int blk_activate(struct virtio_dev *d)
{
	struct blk_dev *b = to_blk(d);
	int rc = 0;

	pthread_mutex_lock(&b->lock);
	blk_free_queues(b);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		struct blk_queue *bq = &b->queues[q];
		uint16_t size = d->vqs[q].ready ? d->vqs[q].size : 0;

		if (!size)
			continue; /* the driver did not enable it */
		bq->reqs = calloc(size, sizeof(*bq->reqs));
		bq->iovs = calloc((size_t)size * BLK_SEG_MAX, sizeof(*bq->iovs));
		if (!bq->reqs || !bq->iovs) {
			blk_free_queues(b);
			rc = -1;
			goto out;
		}
		bq->size = size;
	}
	b->active = true;
	b->stopping = false;
out:
	pthread_mutex_unlock(&b->lock);
	return rc;
}

static void blk_reset(struct virtio_dev *d)
{
	struct blk_dev *b = to_blk(d);

	pthread_mutex_lock(&b->lock);
	/* Requests in flight still write guest RAM: wait for them, then forget them. */
	b->stopping = true;
	blk_drain_locked(b);
	blk_free_queues(b);
	b->active = false;
	b->stopping = false;
	b->signal_mask = 0;
	__atomic_store_n(&b->wce, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&b->lock);
}

static void blk_config_read(struct virtio_dev *d, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct blk_dev *b = to_blk(d);
	struct virtio_blk_config cfg = b->cfg;

	/* §5.2.5: CONFIG_WCE without FLUSH means write-through. */
	if (virtio_has_feature(d, VIRTIO_BLK_F_CONFIG_WCE) &&
	    !virtio_has_feature(d, VIRTIO_BLK_F_FLUSH))
		cfg.wce = 0;
	else
		cfg.wce = __atomic_load_n(&b->wce, __ATOMIC_RELAXED);
	memset(data, 0, len);
	if (offset >= d->config_len)
		return;
	if (len > d->config_len - offset)
		len = d->config_len - offset;
	memcpy(data, (const uint8_t *)&cfg + offset, len);
}

static void blk_config_write(struct virtio_dev *d, uint32_t offset, const uint8_t *data,
			     uint32_t len)
{
	struct blk_dev *b = to_blk(d);

	/* writeback is the only field a driver may write (§5.2.6.1). */
	if (offset != offsetof(struct virtio_blk_config, wce) || len != 1 ||
	    !(d->host_features & (1ULL << VIRTIO_BLK_F_CONFIG_WCE)))
		return;
	__atomic_store_n(&b->wce, data[0] ? 1 : 0, __ATOMIC_RELAXED);
}

static const struct virtio_dev_ops blk_ops = {
    .config_read = blk_config_read,
    .config_write = blk_config_write,
    .activate = blk_activate,
    .reset = blk_reset,
    .queue_notify = blk_queue_notify,
};

/*
 * Picks and starts the engine: io_uring if possible, unless KESTREL_BLK_ENGINE says sync. An
 * image in memory gets the sync engine: its copies never wait on a device, and io_uring would
 * hand every buffered write to a tmpfs file to a worker thread (tmpfs has no non-blocking
 * buffered write), a wake-up and a context switch each way per request (docs/performance.md,
 * Block).
 */
static int blk_engine_init(struct blk_dev *b, unsigned int entries, struct kerr *err)
{
	const char *env = getenv("KESTREL_BLK_ENGINE");
	bool force_sync = false, force_uring = false;

	if (env && *env) {
		if (!strcmp(env, "sync"))
			force_sync = true;
		else if (!strcmp(env, "io_uring") || !strcmp(env, "uring"))
			force_uring = true;
		else
			return kerr_set(err,
					"KESTREL_BLK_ENGINE=%s is not an engine (use io_uring "
					"or sync)",
					env);
	}
	if (!force_sync && !force_uring && blk_fd_in_memory(b->be.fd)) {
		snprintf(b->engine_desc, sizeof(b->engine_desc), "sync (image in memory)");
	} else if (!force_sync) {
#ifdef HAVE_LIBURING
		struct kerr uerr = {.msg = ""};

		b->be.ops = &blk_uring_engine;
		if (blk_uring_engine.init(&b->be, entries, &uerr) == 0) {
			snprintf(b->engine_desc, sizeof(b->engine_desc), "io_uring");
			return 0;
		}
		if (force_uring)
			return kerr_set(err, "disk '%s': KESTREL_BLK_ENGINE=io_uring but %s",
					b->path, uerr.msg);
		snprintf(b->engine_desc, sizeof(b->engine_desc), "sync (io_uring unavailable: %s)",
			 uerr.msg);
#else
		if (force_uring)
			return kerr_set(err,
					"disk '%s': KESTREL_BLK_ENGINE=io_uring but kestrel was "
					"built without liburing",
					b->path);
		snprintf(b->engine_desc, sizeof(b->engine_desc), "sync (built without liburing)");
#endif
	} else {
		snprintf(b->engine_desc, sizeof(b->engine_desc), "sync");
	}
	b->be.ops = &blk_sync_engine;
	return blk_sync_engine.init(&b->be, entries, err);
}

int virtio_blk_create(struct virtio_dev **out, const struct blk_options *o,
		      const struct guest_mem *mem, struct event_loop *loop, const char *name,
		      struct kerr *err)
{
	unsigned int nq = o->num_queues ? o->num_queues : 1;
	struct virtio_dev *d;
	struct blk_dev *b;
	char serial[VIRTIO_BLK_ID_BYTES + 1];
	int rc;

	if (!o->path || !*o->path)
		return kerr_set(err, "disk: no path given (use --disk path=FILE)");
	if (nq > VIRTIO_MAX_QUEUES)
		return kerr_set(err, "disk '%s': num_queues=%u is out of range (1..%d)", o->path,
				nq, VIRTIO_MAX_QUEUES);
	if (!name)
		name = "vda";

	b = calloc(1, sizeof(*b));
	if (!b)
		return kerr_set(err, "disk '%s': out of memory", o->path);
	b->be.fd = -1;
	b->be.event_fd = -1;
	b->be.complete = blk_complete;
	b->be.opaque = b;
	b->loop = loop;
	b->readonly = o->readonly;
	b->wce = 1;
	rc = pthread_mutex_init(&b->lock, NULL);
	if (rc) {
		free(b);
		return kerr_set(err, "disk '%s': pthread_mutex_init: %s", o->path, strerror(rc));
	}
	d = &b->vdev;
	b->path = strdup(o->path);
	if (!b->path || asprintf((char **)&d->name, "virtio-blk %s", name) < 0) {
		d->name = NULL;
		kerr_set(err, "disk '%s': out of memory", o->path);
		goto fail;
	}

	if (blk_open(b, o, err) < 0)
		goto fail;
	if (blk_engine_init(b, nq * VIRTIO_BLK_QUEUE_SIZE, err) < 0)
		goto fail_fd;
	if (b->be.event_fd >= 0 && loop) {
		b->ev.fd = b->be.event_fd;
		b->ev.fn = blk_event;
		b->ev.opaque = b;
		if (event_loop_add(loop, &b->ev, EPOLLIN, err) < 0)
			goto fail_engine;
		b->ev_added = true;
	}

	/* The serial is 20 bytes, NUL-padded when shorter (§5.2.6). */
	snprintf(serial, sizeof(serial), "kestrel-%s", name);
	memcpy(b->serial, serial, strlen(serial));

	b->cfg.size_max = htole32(BLK_SIZE_MAX);
	b->cfg.seg_max = htole32(BLK_SEG_MAX);
	b->cfg.num_queues = htole16(nq);
	if (!o->readonly) {
		b->cfg.max_discard_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
		b->cfg.max_discard_seg = htole32(1);
		b->cfg.max_write_zeroes_sectors = htole32(BLK_MAX_WRITE_ZEROES_SECTORS);
		b->cfg.max_write_zeroes_seg = htole32(1);
		b->cfg.write_zeroes_may_unmap = 1;
	} else {
		b->cfg.discard_sector_alignment = 0;
	}

	d->device_id = VIRTIO_ID_BLOCK;
	d->ops = &blk_ops;
	d->priv = b;
	d->mem = mem;
	d->host_features = (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
			   (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |
			   (1ULL << VIRTIO_BLK_F_CONFIG_WCE) | (1ULL << VIRTIO_BLK_F_TOPOLOGY) |
			   (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			   (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	if (o->readonly)
		d->host_features |= 1ULL << VIRTIO_BLK_F_RO;
	else
		d->host_features |=
		    (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	if (nq > 1)
		d->host_features |= 1ULL << VIRTIO_BLK_F_MQ;
	d->config_len = BLK_CONFIG_LEN;
	d->num_queues = nq;
	d->queue_max_size = VIRTIO_BLK_QUEUE_SIZE;
	*out = d;
	return 0;

fail_engine:
	b->be.ops->fini(&b->be);
fail_fd:
	close(b->be.fd);
fail:
	free((char *)d->name);
	free(b->path);
	pthread_mutex_destroy(&b->lock);
	free(b);
	return -1;
}

void virtio_blk_destroy(struct virtio_dev *d)
{
	struct blk_dev *b;

	if (!d)
		return;
	b = to_blk(d);
	pthread_mutex_lock(&b->lock);
	b->stopping = true;
	blk_drain_locked(b);
	blk_free_queues(b);
	b->active = false;
	pthread_mutex_unlock(&b->lock);
	if (b->ev_added)
		event_loop_del(b->loop, &b->ev);
	b->be.ops->fini(&b->be);
	/*
	 * Unlock explicitly: the lock lives until the open file is released, and an io_uring
	 * (torn down asynchronously by the kernel) may hold the file a little longer than us.
	 */
	flock(b->be.fd, LOCK_UN);
	close(b->be.fd);
	pthread_mutex_destroy(&b->lock);
	free((char *)d->name);
	free(b->path);
	free(b);
}

const char *virtio_blk_engine(const struct virtio_dev *d)
{
	return to_blk(d)->engine_desc;
}

uint64_t virtio_blk_capacity(const struct virtio_dev *d)
{
	return to_blk(d)->capacity;
}

const struct virtio_blk_stats *virtio_blk_stats(const struct virtio_dev *d)
{
	return &to_blk(d)->stats;
}
