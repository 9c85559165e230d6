/*
 * virtio-blk (VIRTIO 1.2 §5.2): a disk image (regular file or block device) given to the guest
 * through the device <-> transport seam of virtio/device.h. Requests are served on the event-
 * loop thread by an I/O engine (virtio/blk_backend.h): io_uring when the kernel allows it,
 * synchronous system calls otherwise.
 */
#ifndef KESTREL_VIRTIO_BLK_H
#define KESTREL_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/device.h"
#include "vmm/error.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"

/* Largest queue the device offers (seg_max is this minus 2). */
#define VIRTIO_BLK_QUEUE_SIZE 256

struct blk_options {
	const char *path;
	bool readonly;
	bool direct;		 /* O_DIRECT: bypass the host page cache */
	unsigned int num_queues; /* 0 means 1; at most VIRTIO_MAX_QUEUES */
};

/* Counters, for metrics. Owned by the event-loop thread; read them with the VM paused. */
struct virtio_blk_stats {
	uint64_t reads, writes, flushes, discards, write_zeroes, get_ids;
	uint64_t read_bytes, write_bytes;
	uint64_t ioerr;	    /* requests failed with VIRTIO_BLK_S_IOERR (bad range, I/O error...) */
	uint64_t unsupp;    /* requests failed with VIRTIO_BLK_S_UNSUPP */
	uint64_t malformed; /* chains without a status byte, pushed back with len 0 */
	uint64_t queue_errors; /* broken queues (device set to NEEDS_RESET) */
};

/*
 * Opens and locks the image and builds the device (not yet attached to a transport: the caller
 * sets d->transport and d->transport_priv). name is the disk's short name ("vda", "disk0"):
 * messages say "virtio-blk <name>" and GET_ID answers "kestrel-<name>" (20 bytes at most).
 * The engine is io_uring unless it cannot be set up or KESTREL_BLK_ENGINE=sync; with
 * KESTREL_BLK_ENGINE=io_uring, an io_uring failure is an error instead of a fallback.
 * All failures are one line in err; nothing is left open.
 */
int virtio_blk_create(struct virtio_dev **out, const struct blk_options *o,
		      const struct guest_mem *mem, struct event_loop *loop, const char *name,
		      struct kerr *err);

/*
 * Waits for requests in flight, unregisters from the event loop, unlocks and closes the image.
 * Call it with the event-loop thread stopped (event_loop_stop), or at least with no callback of
 * this device running: the registration is removed but a callback already running is not
 * waited for.
 */
void virtio_blk_destroy(struct virtio_dev *d);

/* "io_uring" or "sync": which engine serves the device, for the VMM's log. */
const char *virtio_blk_engine(const struct virtio_dev *d);

/* Capacity in 512-byte sectors. */
uint64_t virtio_blk_capacity(const struct virtio_dev *d);

const struct virtio_blk_stats *virtio_blk_stats(const struct virtio_dev *d);

/*
 * For tests and shutdown: completes every request in flight now (blocking until the engine
 * reports them), pushing and signalling as the event loop would. Not needed in normal
 * operation, where the engine's eventfd on the event loop does this.
 */
void virtio_blk_wait_idle(struct virtio_dev *d);

#endif
