/*
 * virtio-blk back ends: the engines that move a request's bytes between guest RAM and the disk
 * image. The device model (blk.c) validates a request, fills in a struct blk_req and submits
 * it; the engine calls be->complete() exactly once per submitted request, with 0 or -errno.
 *
 * Two engines:
 * - io_uring (blk_uring.c): readv/writev straight on the guest's buffers, fsync, fallocate;
 *   completions are reaped from an eventfd the device registers with the event loop, so the
 *   guest's queue depth reaches the disk.
 * - sync (blk_sync.c): the same operations done with preadv2/pwritev2/fdatasync/fallocate on
 *   the calling thread; complete() runs before submit() returns. The device picks it for an
 *   image in memory (blk_fd_in_memory), where a copy never waits on a device.
 *
 * Threads: an engine has no lock of its own. The device serialises every call into it (and
 * every complete() callback) with its own mutex.
 */
#ifndef KESTREL_VIRTIO_BLK_BACKEND_H
#define KESTREL_VIRTIO_BLK_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/error.h"

/* Most data segments one request may carry; advertised as seg_max (queue size 256 - 2). */
#define BLK_SEG_MAX 254

enum blk_op {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_DISCARD,
	BLK_OP_WRITE_ZEROES,
};

/* How far a write-zeroes request has fallen back (EOPNOTSUPP moves it one step down). */
enum blk_wz_stage {
	BLK_WZ_PUNCH,	   /* FALLOC_FL_PUNCH_HOLE: only when the guest allows unmapping */
	BLK_WZ_ZERO_RANGE, /* FALLOC_FL_ZERO_RANGE */
	BLK_WZ_WRITE,	   /* plain writes of zeros, synchronously */
};

struct blk_req {
	/* Filled by the device before submit. */
	enum blk_op op;
	uint64_t offset; /* bytes into the image */
	uint64_t len;	 /* bytes: data length, or the discard / write-zeroes range */
	struct iovec
	    *iov; /* READ/WRITE: host views of the guest's buffers (consumed by short I/O) */
	int iovcnt;
	bool unmap; /* WRITE_ZEROES: the guest allows deallocation */
	bool fua;   /* write-through: durable before completion (WRITE, DISCARD, WRITE_ZEROES) */

	/* Engine state. */
	uint64_t done; /* READ/WRITE bytes transferred so far */
	enum blk_wz_stage wz_stage;
	bool synced; /* the fua fsync was issued */

	/* Device bookkeeping. */
	uint16_t head;
	uint16_t q;
	uint8_t *status; /* host view of the status byte (last writable byte of the chain) */
	bool busy;
};

struct blk_backend;

struct blk_engine_ops {
	const char *name;
	/* entries: most requests in flight at once. */
	int (*init)(struct blk_backend *be, unsigned int entries, struct kerr *err);
	void (*fini)(struct blk_backend *be);
	/* Starts r; be->complete(r, res) follows, now (sync) or from reap(). */
	void (*submit)(struct blk_backend *be, struct blk_req *r);
	/* Hands what submit() queued to the kernel (one syscall per batch). */
	void (*kick)(struct blk_backend *be);
	/* Completes what has finished; with wait, first blocks until something has. */
	void (*reap)(struct blk_backend *be, bool wait);
};

struct blk_backend {
	const struct blk_engine_ops *ops;
	int fd;
	int event_fd; /* readable when reap() has work; -1 for the sync engine */
	void (*complete)(struct blk_backend *be, struct blk_req *r, int res);
	void *opaque; /* the device */
	void *priv;   /* the engine's */
	/* Learned on the first EOPNOTSUPP so later requests skip straight to what works. */
	bool no_punch;
	bool no_zero_range;
};

extern const struct blk_engine_ops blk_sync_engine;
#ifdef HAVE_LIBURING
extern const struct blk_engine_ops blk_uring_engine;
#endif

/* Shared helpers (blk_sync.c). */
/* The fallocate mode for a DISCARD / WRITE_ZEROES at its current stage; 0 means write zeros. */
int blk_fallocate_mode(const struct blk_req *r);
/* Picks the first write-zeroes stage worth trying on this image. */
void blk_wz_start(struct blk_backend *be, struct blk_req *r);
/* After EOPNOTSUPP at r's stage: remembers it and moves on; false if there is nothing left. */
bool blk_wz_fall_back(struct blk_backend *be, struct blk_req *r);
/* Writes zeros over [off, off+len) with pwrite; 0 or -errno. */
int blk_write_zeroes_sync(int fd, uint64_t off, uint64_t len);
/* The file lives in memory (tmpfs, ramfs): reading or writing it never waits on a device. */
bool blk_fd_in_memory(int fd);
/* Drops n transferred bytes from the front of an iovec array (after a short read/write). */
void blk_iov_advance(struct iovec **iov, int *iovcnt, uint64_t n);

#endif
