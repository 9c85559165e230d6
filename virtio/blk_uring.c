/*
 * The io_uring virtio-blk engine. One ring per device: the device submits every request it
 * popped in one batch (kick), the kernel works on them concurrently, and completions are
 * reaped when the ring's registered eventfd fires on the event loop. Reads and writes go
 * straight to the guest's buffers (the iovecs are host views of guest RAM, kept alive in the
 * request until its completion).
 */
#include "virtio/blk_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define URING_MAX_ENTRIES 4096

struct uring_priv {
	struct io_uring ring;
	bool fixed; /* the image is registered as fixed file 0 */
};

static void uring_on_result(struct blk_backend *be, struct blk_req *r, int res);

static struct io_uring_sqe *uring_get_sqe(struct uring_priv *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	/* A full SQ: hand what is there to the kernel and try once more. */
	if (!sqe && io_uring_submit(&u->ring) >= 0)
		sqe = io_uring_get_sqe(&u->ring);
	return sqe;
}

static void uring_set_file(struct uring_priv *u, struct io_uring_sqe *sqe)
{
	if (u->fixed) {
		sqe->fd = 0;
		sqe->flags |= IOSQE_FIXED_FILE;
	}
}

/* Queues the next operation r needs, given how far it has got. */
static void uring_issue(struct blk_backend *be, struct blk_req *r)
{
	struct uring_priv *u = be->priv;
	struct io_uring_sqe *sqe;
	int mode = 0;

	if ((r->op == BLK_OP_DISCARD || r->op == BLK_OP_WRITE_ZEROES) && !r->synced) {
		mode = blk_fallocate_mode(r);
		if (!mode) {
			/* Last resort for a file system without fallocate: rare, so synchronous. */
			uring_on_result(be, r, blk_write_zeroes_sync(be->fd, r->offset, r->len));
			return;
		}
	}

	sqe = uring_get_sqe(u);
	if (!sqe) {
		be->complete(be, r, -EAGAIN);
		return;
	}
	switch (r->op) {
	case BLK_OP_READ:
		io_uring_prep_readv(sqe, be->fd, r->iov, r->iovcnt, r->offset + r->done);
		break;
	case BLK_OP_WRITE:
		io_uring_prep_writev(sqe, be->fd, r->iov, r->iovcnt, r->offset + r->done);
		/* Write-through: one operation that is durable when it completes. */
		if (r->fua)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case BLK_OP_FLUSH:
		io_uring_prep_fsync(sqe, be->fd, IORING_FSYNC_DATASYNC);
		/*
		 * Drain: the fsync starts only after every request submitted before it has
		 * completed, so it covers every write the guest saw completed (and more).
		 */
		sqe->flags |= IOSQE_IO_DRAIN;
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		if (r->synced)
			io_uring_prep_fsync(sqe, be->fd, IORING_FSYNC_DATASYNC);
		else
			io_uring_prep_fallocate(sqe, be->fd, mode, (off_t)r->offset, (off_t)r->len);
		break;
	}
	uring_set_file(u, sqe);
	io_uring_sqe_set_data(sqe, r);
}

static void uring_on_result(struct blk_backend *be, struct blk_req *r, int res)
{
	switch (r->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		if (res == -EAGAIN || res == -EINTR) {
			uring_issue(be, r);
			return;
		}
		if (res < 0) {
			be->complete(be, r, res);
			return;
		}
		if (res == 0) {
			be->complete(be, r, -EIO); /* the image shrank under us */
			return;
		}
		/* Short transfers happen (signals, page cache pressure): go on from there. */
		r->done += res;
		blk_iov_advance(&r->iov, &r->iovcnt, res);
		if (r->done < r->len)
			uring_issue(be, r);
		else
			be->complete(be, r, 0);
		return;
	case BLK_OP_FLUSH:
		be->complete(be, r, res);
		return;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		if (r->synced) {
			be->complete(be, r, res);
			return;
		}
		if (res == -EOPNOTSUPP) {
			/* A discard is only a hint; write-zeroes tries the next way. */
			if (r->op == BLK_OP_DISCARD) {
				res = 0;
			} else if (blk_wz_fall_back(be, r)) {
				uring_issue(be, r);
				return;
			}
		}
		if (res == 0 && r->fua) {
			r->synced = true;
			uring_issue(be, r);
			return;
		}
		be->complete(be, r, res);
		return;
	}
}

static int uring_init(struct blk_backend *be, unsigned int entries, struct kerr *err)
{
	static const int ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
				  IORING_OP_FALLOCATE};
	struct io_uring_probe *probe;
	struct uring_priv *u;
	int rc;

	u = calloc(1, sizeof(*u));
	if (!u)
		return kerr_set(err, "out of memory");
	if (entries > URING_MAX_ENTRIES)
		entries = URING_MAX_ENTRIES;
	rc = io_uring_queue_init(entries, &u->ring, 0);
	if (rc < 0) {
		kerr_set(err, "io_uring_queue_init: %s", strerror(-rc));
		goto fail_free;
	}
	/* Old kernels have io_uring without some of the operations we need. */
	probe = io_uring_get_probe_ring(&u->ring);
	if (!probe) {
		kerr_set(err, "io_uring: cannot probe supported operations");
		goto fail_ring;
	}
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (!io_uring_opcode_supported(probe, ops[i])) {
			io_uring_free_probe(probe);
			kerr_set(err, "io_uring: operation %d not supported by this kernel",
				 ops[i]);
			goto fail_ring;
		}
	}
	io_uring_free_probe(probe);

	be->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (be->event_fd < 0) {
		kerr_set(err, "eventfd: %s", strerror(errno));
		goto fail_ring;
	}
	rc = io_uring_register_eventfd(&u->ring, be->event_fd);
	if (rc < 0) {
		kerr_set(err, "io_uring_register_eventfd: %s", strerror(-rc));
		goto fail_efd;
	}
	/* A fixed file saves a reference count per request; optional. */
	u->fixed = io_uring_register_files(&u->ring, &be->fd, 1) == 0;
	be->priv = u;
	return 0;

fail_efd:
	close(be->event_fd);
	be->event_fd = -1;
fail_ring:
	io_uring_queue_exit(&u->ring);
fail_free:
	free(u);
	return -1;
}

static void uring_fini(struct blk_backend *be)
{
	struct uring_priv *u = be->priv;

	if (!u)
		return;
	if (u->fixed)
		io_uring_unregister_files(&u->ring);
	io_uring_queue_exit(&u->ring);
	free(u);
	be->priv = NULL;
	if (be->event_fd >= 0)
		close(be->event_fd);
	be->event_fd = -1;
}

static void uring_submit(struct blk_backend *be, struct blk_req *r)
{
	r->done = 0;
	r->synced = false;
	if (r->op == BLK_OP_WRITE_ZEROES)
		blk_wz_start(be, r);
	uring_issue(be, r);
}

static void uring_kick(struct blk_backend *be)
{
	struct uring_priv *u = be->priv;

	/* On failure (-EBUSY: completions backed up) the SQEs stay queued for the next kick. */
	if (io_uring_sq_ready(&u->ring))
		io_uring_submit(&u->ring);
}

static void uring_reap(struct blk_backend *be, bool wait)
{
	struct uring_priv *u = be->priv;
	struct io_uring_cqe *cqe;
	uint64_t cnt;
	ssize_t n;

	/*
	 * Level-triggered: clear before peeking, so a completion posted after the peek re-arms.
	 * EAGAIN (nothing signalled) is fine, and any failure still leaves the CQ to peek.
	 */
	n = read(be->event_fd, &cnt, sizeof(cnt));
	(void)n;
	if (wait) {
		int rc;

		uring_kick(be);
		do
			rc = io_uring_wait_cqe(&u->ring, &cqe);
		while (rc == -EINTR);
	}
	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		struct blk_req *r = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&u->ring, cqe);
		uring_on_result(be, r, res);
	}
	/* Continuations of short transfers and fallbacks queued above. */
	uring_kick(be);
}

const struct blk_engine_ops blk_uring_engine = {
    .name = "io_uring",
    .init = uring_init,
    .fini = uring_fini,
    .submit = uring_submit,
    .kick = uring_kick,
    .reap = uring_reap,
};
