/* virtio-blk's insides, shared by blk.c (the device), blk_request.c and blk_image.c. */
#ifndef KESTREL_VIRTIO_BLK_PRIV_H
#define KESTREL_VIRTIO_BLK_PRIV_H

#include <linux/virtio_blk.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/uio.h>

#include "virtio/blk.h"
#include "virtio/blk_backend.h"

#define SECTOR_SIZE 512ULL
#define SECTOR_SHIFT 9
/* size_max: a limit the guest needs for its segment merging; we take any length. */
#define BLK_SIZE_MAX (1U << 20)
/* Punching holes is cheap at any size; writing zeros as a fallback is not: 32 MiB per request. */
#define BLK_MAX_DISCARD_SECTORS (1U << 22)
#define BLK_MAX_WRITE_ZEROES_SECTORS (1U << 16)
/* The config space up to write_zeroes_may_unmap and its padding (no secure erase). */
#define BLK_CONFIG_LEN offsetof(struct virtio_blk_config, max_secure_erase_sectors)

struct blk_queue {
	struct blk_req *reqs; /* indexed by head: a head is in flight at most once */
	struct iovec *iovs;   /* BLK_SEG_MAX per request */
	uint16_t size;
};

struct blk_dev {
	struct virtio_dev vdev;
	struct blk_backend be;
	struct event_loop *loop;
	struct event_handler ev; /* the engine's completion eventfd */
	bool ev_added;
	char *path;
	bool readonly;
	uint64_t capacity; /* sectors */
	char serial[VIRTIO_BLK_ID_BYTES];
	char engine_desc[160];
	struct virtio_blk_config cfg; /* little-endian; fixed after create except wce */
	uint8_t wce; /* writeback cache on (1) or write-through (0); atomic: vCPU writes it */

	pthread_mutex_t lock;
	/* Under lock. */
	bool active;
	bool stopping; /* reset: completions are dropped, not pushed */
	unsigned int inflight;
	uint64_t signal_mask; /* queues with pushes not yet notified */
	struct blk_queue queues[VIRTIO_MAX_QUEUES];
	struct virtq_chain chain; /* the chain being parsed; too big for a stack */
	struct virtio_blk_stats stats;
};

static inline struct blk_dev *to_blk(const struct virtio_dev *d)
{
	return d->priv;
}

/* blk_request.c: the queues' work (event-loop thread, under b->lock unless said). */
void blk_queue_notify(struct virtio_dev *d, uint16_t q); /* takes b->lock */
void blk_complete(struct blk_backend *be, struct blk_req *r, int res);
void blk_notify_pending(struct blk_dev *b);

/* blk_image.c: opens, locks and probes the image; fills b->capacity and the geometry. */
int blk_open(struct blk_dev *b, const struct blk_options *o, struct kerr *err);

#endif
