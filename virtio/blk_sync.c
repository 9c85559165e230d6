/*
 * The portable virtio-blk engine: every request is done synchronously on the calling thread
 * (the event loop). Used when io_uring is unavailable (no liburing at build time, an old
 * kernel, a seccomp filter), forced with KESTREL_BLK_ENGINE=sync, or picked by the device for
 * an image in memory. Also holds the helpers both engines share.
 */
#include "virtio/blk_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

void blk_iov_advance(struct iovec **iov, int *iovcnt, uint64_t n)
{
	while (n && *iovcnt) {
		if (n < (*iov)->iov_len) {
			(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
			(*iov)->iov_len -= n;
			return;
		}
		n -= (*iov)->iov_len;
		(*iov)++;
		(*iovcnt)--;
	}
}

int blk_fallocate_mode(const struct blk_req *r)
{
	if (r->op == BLK_OP_DISCARD)
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	switch (r->wz_stage) {
	case BLK_WZ_PUNCH:
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	case BLK_WZ_ZERO_RANGE:
		/* KEEP_SIZE: block devices refuse ZERO_RANGE without it. */
		return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	default:
		return 0;
	}
}

void blk_wz_start(struct blk_backend *be, struct blk_req *r)
{
	if (r->unmap && !be->no_punch)
		r->wz_stage = BLK_WZ_PUNCH;
	else if (!be->no_zero_range)
		r->wz_stage = BLK_WZ_ZERO_RANGE;
	else
		r->wz_stage = BLK_WZ_WRITE;
}

bool blk_wz_fall_back(struct blk_backend *be, struct blk_req *r)
{
	switch (r->wz_stage) {
	case BLK_WZ_PUNCH:
		be->no_punch = true;
		r->wz_stage = be->no_zero_range ? BLK_WZ_WRITE : BLK_WZ_ZERO_RANGE;
		return true;
	case BLK_WZ_ZERO_RANGE:
		be->no_zero_range = true;
		r->wz_stage = BLK_WZ_WRITE;
		return true;
	default:
		return false;
	}
}

int blk_write_zeroes_sync(int fd, uint64_t off, uint64_t len)
{
	/* Aligned so it also works on an O_DIRECT descriptor. */
	static const uint8_t zeros[64 * 1024] __attribute__((aligned(4096)));

	while (len) {
		size_t chunk = len < sizeof(zeros) ? len : sizeof(zeros);
		ssize_t n = pwrite(fd, zeros, chunk, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		off += n;
		len -= n;
	}
	return 0;
}

bool blk_fd_in_memory(int fd)
{
	struct statfs sf;
	struct stat st;

	/* A block device's node sits on devtmpfs too: only a regular file's data is there. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || fstatfs(fd, &sf) < 0)
		return false;
	return sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
}

/* preadv2/pwritev2 until the whole request is done: regular files may return short counts. */
static int blk_rw_sync(int fd, struct blk_req *r)
{
	struct iovec *iov = r->iov;
	int iovcnt = r->iovcnt;

	while (r->done < r->len) {
		ssize_t n;

		if (r->op == BLK_OP_READ)
			n = preadv2(fd, iov, iovcnt, (off_t)(r->offset + r->done), 0);
		else
			n = pwritev2(fd, iov, iovcnt, (off_t)(r->offset + r->done),
				     r->fua ? RWF_DSYNC : 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* the image shrank under us */
		r->done += n;
		blk_iov_advance(&iov, &iovcnt, n);
	}
	return 0;
}

static int sync_datasync(int fd)
{
	return fdatasync(fd) < 0 ? -errno : 0;
}

static int sync_fallocate(struct blk_backend *be, struct blk_req *r)
{
	int res;

	if (r->op == BLK_OP_WRITE_ZEROES)
		blk_wz_start(be, r);
	for (;;) {
		int mode = blk_fallocate_mode(r);

		if (mode)
			res = fallocate(be->fd, mode, (off_t)r->offset, (off_t)r->len) < 0 ? -errno
											   : 0;
		else
			res = blk_write_zeroes_sync(be->fd, r->offset, r->len);
		if (res != -EOPNOTSUPP)
			break;
		/* A discard is only a hint: if the file system can't, nothing is lost. */
		if (r->op == BLK_OP_DISCARD)
			return 0;
		if (!blk_wz_fall_back(be, r))
			break;
	}
	if (res == 0 && r->fua)
		res = sync_datasync(be->fd);
	return res;
}

static int sync_init(struct blk_backend *be, unsigned int entries, struct kerr *err)
{
	(void)entries;
	(void)err;
	be->event_fd = -1;
	be->priv = NULL;
	return 0;
}

static void sync_fini(struct blk_backend *be)
{
	(void)be;
}

static void sync_submit(struct blk_backend *be, struct blk_req *r)
{
	int res;

	r->done = 0;
	switch (r->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		res = blk_rw_sync(be->fd, r);
		break;
	case BLK_OP_FLUSH:
		res = sync_datasync(be->fd);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		res = sync_fallocate(be, r);
		break;
	default:
		res = -EINVAL;
		break;
	}
	be->complete(be, r, res);
}

static void sync_kick(struct blk_backend *be)
{
	(void)be;
}

static void sync_reap(struct blk_backend *be, bool wait)
{
	(void)be;
	(void)wait;
}

const struct blk_engine_ops blk_sync_engine = {
    .name = "sync",
    .init = sync_init,
    .fini = sync_fini,
    .submit = sync_submit,
    .kick = sync_kick,
    .reap = sync_reap,
};
