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
#include "virtio/blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

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

static struct blk_dev *to_blk(const struct virtio_dev *d)
{
	return d->priv;
}

/* Write-through when the guest can't flush, or turned the cache off (§5.2.6.3). */
static bool blk_writethrough(const struct blk_dev *b)
{
	const struct virtio_dev *d = &b->vdev;

	if (!virtio_has_feature(d, VIRTIO_BLK_F_FLUSH))
		return true;
	return virtio_has_feature(d, VIRTIO_BLK_F_CONFIG_WCE) &&
	       !__atomic_load_n(&b->wce, __ATOMIC_RELAXED);
}

/* sector .. sector + nsect within the disk, without overflow for any 64-bit sector. */
static bool blk_range_ok(const struct blk_dev *b, uint64_t sector, uint64_t nsect)
{
	return sector <= b->capacity && nsect <= b->capacity - sector;
}

static void blk_push(struct blk_dev *b, uint16_t q, uint16_t head, uint32_t len)
{
	virtq_push(&b->vdev.vqs[q], head, len);
	b->signal_mask |= 1ULL << q;
}

/* Answers a request: status byte, then the used element (data bytes + the status byte). */
static void blk_finish(struct blk_dev *b, struct blk_req *r, uint8_t status, uint32_t data_len)
{
	if (status == VIRTIO_BLK_S_IOERR)
		b->stats.ioerr++;
	else if (status == VIRTIO_BLK_S_UNSUPP)
		b->stats.unsupp++;
	*r->status = status;
	blk_push(b, r->q, r->head, data_len + 1);
}

static void blk_notify_pending(struct blk_dev *b)
{
	uint64_t mask = b->signal_mask;

	b->signal_mask = 0;
	if (!b->vdev.transport)
		return;
	for (uint16_t q = 0; mask; q++, mask >>= 1)
		if (mask & 1)
			virtio_dev_notify(&b->vdev, q);
}

/* The engine's completion callback; runs under b->lock. */
static void blk_complete(struct blk_backend *be, struct blk_req *r, int res)
{
	struct blk_dev *b = be->opaque;

	r->busy = false;
	b->inflight--;
	if (b->stopping)
		return;
	if (res < 0)
		blk_finish(b, r, VIRTIO_BLK_S_IOERR, 0);
	else
		blk_finish(b, r, VIRTIO_BLK_S_OK, r->op == BLK_OP_READ ? (uint32_t)r->len : 0);
}

static void blk_submit(struct blk_dev *b, struct blk_req *r)
{
	r->busy = true;
	b->inflight++;
	b->be.ops->submit(&b->be, r);
}

/*
 * Points r->iov at len bytes of one side of the chain, starting at offset. Returns false if
 * that needs more than BLK_SEG_MAX segments (more than the seg_max we advertise).
 */
static bool blk_build_iov(struct blk_dev *b, struct blk_req *r, bool writable, uint64_t offset,
			  uint64_t len)
{
	const struct virtq_chain *c = &b->chain;
	unsigned int first = writable ? c->nr_readable : 0;
	unsigned int end = writable ? c->nr_segs : c->nr_readable;
	int n = 0;

	r->iov = b->queues[r->q].iovs + (size_t)r->head * BLK_SEG_MAX;
	for (unsigned int i = first; i < end && len; i++) {
		uint64_t chunk;

		if (offset >= c->segs[i].len) {
			offset -= c->segs[i].len;
			continue;
		}
		if (n == BLK_SEG_MAX)
			return false;
		chunk = c->segs[i].len - offset;
		if (chunk > len)
			chunk = len;
		r->iov[n].iov_base = (uint8_t *)c->segs[i].addr + offset;
		r->iov[n].iov_len = chunk;
		n++;
		len -= chunk;
		offset = 0;
	}
	r->iovcnt = n;
	return true;
}

static void blk_do_rw(struct blk_dev *b, struct blk_req *r, uint64_t sector, bool write)
{
	const struct virtq_chain *c = &b->chain;
	uint64_t len;

	if (write) {
		b->stats.writes++;
		/* Never let a guest near a read-only image, whatever it negotiated. */
		if (b->readonly) {
			blk_finish(b, r, VIRTIO_BLK_S_IOERR, 0);
			return;
		}
		/* Data follows the header; the only writable byte that matters is the status. */
		len = c->readable_bytes - sizeof(struct virtio_blk_outhdr);
	} else {
		b->stats.reads++;
		/* Data is every writable byte but the last, which is the status. */
		len = c->writable_bytes - 1;
	}
	if (len % SECTOR_SIZE || !blk_range_ok(b, sector, len >> SECTOR_SHIFT)) {
		blk_finish(b, r, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	if (len == 0) {
		blk_finish(b, r, VIRTIO_BLK_S_OK, 0);
		return;
	}
	if (!blk_build_iov(b, r, !write, write ? sizeof(struct virtio_blk_outhdr) : 0, len)) {
		blk_finish(b, r, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	if (write)
		b->stats.write_bytes += len;
	else
		b->stats.read_bytes += len;
	r->op = write ? BLK_OP_WRITE : BLK_OP_READ;
	r->offset = sector << SECTOR_SHIFT;
	r->len = len;
	r->fua = write && blk_writethrough(b);
	blk_submit(b, r);
}

static void blk_do_discard_wz(struct blk_dev *b, struct blk_req *r, uint32_t type)
{
	const struct virtq_chain *c = &b->chain;
	bool discard = type == VIRTIO_BLK_T_DISCARD;
	struct virtio_blk_discard_write_zeroes seg;
	uint32_t seg_bytes = c->readable_bytes - sizeof(struct virtio_blk_outhdr);
	uint64_t sector;
	uint32_t num, flags, max;

	if (discard)
		b->stats.discards++;
	else
		b->stats.write_zeroes++;
	if (b->readonly) {
		blk_finish(b, r, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	if (!virtio_has_feature(&b->vdev,
				discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES)) {
		blk_finish(b, r, VIRTIO_BLK_S_UNSUPP, 0);
		return;
	}
	/* Exactly one segment: we advertise max_discard_seg = max_write_zeroes_seg = 1. */
	if (seg_bytes > sizeof(seg) && seg_bytes % sizeof(seg) == 0) {
		blk_finish(b, r, VIRTIO_BLK_S_UNSUPP, 0);
		return;
	}
	if (seg_bytes != sizeof(seg)) {
		blk_finish(b, r, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	virtq_chain_read(c, sizeof(struct virtio_blk_outhdr), &seg, sizeof(seg));
	sector = le64toh(seg.sector);
	num = le32toh(seg.num_sectors);
	flags = le32toh(seg.flags);
	/* §5.2.6.2: unmap on a discard, or any reserved flag, is unsupported. */
	if (flags & ~(discard ? 0U : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)) {
		blk_finish(b, r, VIRTIO_BLK_S_UNSUPP, 0);
		return;
	}
	max = discard ? BLK_MAX_DISCARD_SECTORS : BLK_MAX_WRITE_ZEROES_SECTORS;
	if (num > max || !blk_range_ok(b, sector, num)) {
		blk_finish(b, r, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	if (num == 0) {
		blk_finish(b, r, VIRTIO_BLK_S_OK, 0);
		return;
	}
	r->op = discard ? BLK_OP_DISCARD : BLK_OP_WRITE_ZEROES;
	r->offset = sector << SECTOR_SHIFT;
	r->len = (uint64_t)num << SECTOR_SHIFT;
	r->unmap = flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	r->fua = blk_writethrough(b);
	r->iov = NULL;
	r->iovcnt = 0;
	blk_submit(b, r);
}

/*
 * One popped chain. Returns -1 only if the guest made a head available that is still in
 * flight: the queue can't be trusted any more (the caller sets NEEDS_RESET).
 */
static int blk_handle_chain(struct blk_dev *b, uint16_t q)
{
	const struct virtq_chain *c = &b->chain;
	struct blk_queue *bq = &b->queues[q];
	struct virtio_blk_outhdr hdr;
	const struct virtq_seg *last;
	struct blk_req *r;
	uint32_t type;
	uint64_t sector;

	if (c->head >= bq->size || bq->reqs[c->head].busy)
		return -1;
	r = &bq->reqs[c->head];
	r->head = c->head;
	r->q = q;

	/*
	 * No writable byte means no status byte: nothing can tell the driver what happened, so
	 * the chain goes back unused (len 0) and is counted. The queue itself stays usable.
	 */
	if (c->writable_bytes == 0) {
		b->stats.malformed++;
		blk_push(b, q, c->head, 0);
		return 0;
	}
	last = &c->segs[c->nr_segs - 1];
	r->status = (uint8_t *)last->addr + last->len - 1;

	/* A short header still has a status byte to fail it through. */
	if (c->readable_bytes < sizeof(hdr)) {
		blk_finish(b, r, VIRTIO_BLK_S_IOERR, 0);
		return 0;
	}
	virtq_chain_read(c, 0, &hdr, sizeof(hdr));
	type = le32toh(hdr.type);
	sector = le64toh(hdr.sector);

	switch (type) {
	case VIRTIO_BLK_T_IN:
		blk_do_rw(b, r, sector, false);
		break;
	case VIRTIO_BLK_T_OUT:
		blk_do_rw(b, r, sector, true);
		break;
	case VIRTIO_BLK_T_FLUSH:
		b->stats.flushes++;
		/* Nothing was written, so nothing to make durable. */
		if (b->readonly) {
			blk_finish(b, r, VIRTIO_BLK_S_OK, 0);
			break;
		}
		r->op = BLK_OP_FLUSH;
		r->iov = NULL;
		r->iovcnt = 0;
		r->fua = false;
		blk_submit(b, r);
		break;
	case VIRTIO_BLK_T_GET_ID: {
		size_t n = c->writable_bytes - 1;

		b->stats.get_ids++;
		if (n > VIRTIO_BLK_ID_BYTES)
			n = VIRTIO_BLK_ID_BYTES;
		virtq_chain_write(c, 0, b->serial, n);
		blk_finish(b, r, VIRTIO_BLK_S_OK, n);
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		blk_do_discard_wz(b, r, type);
		break;
	default:
		blk_finish(b, r, VIRTIO_BLK_S_UNSUPP, 0);
		break;
	}
	return 0;
}

static void blk_queue_notify(struct virtio_dev *d, uint16_t q)
{
	struct blk_dev *b = to_blk(d);
	struct virtqueue *vq;
	bool broken = false;
	int rc;

	pthread_mutex_lock(&b->lock);
	if (!b->active || q >= d->num_queues || !b->queues[q].reqs)
		goto out;
	vq = &d->vqs[q];
	/* Pop everything first and submit it as one batch: the guest's queue depth reaches
	 * the disk. */
	for (;;) {
		virtq_disable_notify(vq);
		while ((rc = virtq_pop(vq, &b->chain)) == 1) {
			if (blk_handle_chain(b, q) < 0) {
				/* Later pops fail too, until the transport resets the queue. */
				vq->broken = true;
				rc = -1;
				break;
			}
		}
		if (rc < 0) {
			broken = true;
			b->stats.queue_errors++;
			break;
		}
		if (!virtq_enable_notify(vq))
			break;
	}
	b->be.ops->kick(&b->be);
out:
	blk_notify_pending(b);
	pthread_mutex_unlock(&b->lock);
	/* Outside the lock: the transport may well call reset() from here. */
	if (broken && d->transport)
		d->transport->needs_reset(d);
}

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

static unsigned int ilog2_u32(uint32_t v)
{
	unsigned int r = 0;

	while (v >>= 1)
		r++;
	return r;
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* Size and block sizes of the open image; fills b->capacity and b->cfg's geometry fields. */
static int blk_probe(struct blk_dev *b, int fd, const struct blk_options *o, struct kerr *err)
{
	uint32_t logical = SECTOR_SIZE, physical = SECTOR_SIZE;
	struct stat st;
	uint64_t size;

	if (fstat(fd, &st) < 0)
		return kerr_set(err, "cannot stat disk '%s': %s", o->path, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		size = st.st_size;
		/* The file system's block: guests then align their I/O to the page cache's. */
		if (st.st_blksize >= (blksize_t)SECTOR_SIZE && st.st_blksize <= 4096 &&
		    is_pow2(st.st_blksize))
			physical = st.st_blksize;
#ifdef STATX_DIOALIGN
		if (o->direct) {
			struct statx stx;

			/* O_DIRECT I/O must be aligned as the file system says. */
			if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
			    (stx.stx_mask & STATX_DIOALIGN) &&
			    stx.stx_dio_offset_align > SECTOR_SIZE &&
			    stx.stx_dio_offset_align <= 4096 && is_pow2(stx.stx_dio_offset_align))
				logical = stx.stx_dio_offset_align;
		}
#endif
	} else if (S_ISBLK(st.st_mode)) {
		int lbs = 0;
		unsigned int pbs = 0;

		if (ioctl(fd, BLKGETSIZE64, &size) < 0)
			return kerr_set(err, "cannot get the size of disk '%s': %s", o->path,
					strerror(errno));
		if (ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs >= (int)SECTOR_SIZE && lbs <= 65536 &&
		    is_pow2(lbs))
			logical = lbs;
		if (ioctl(fd, BLKPBSZGET, &pbs) == 0 && pbs >= logical && pbs <= 65536 &&
		    is_pow2(pbs))
			physical = pbs;
	} else {
		return kerr_set(err, "disk '%s' is not a regular file or block device", o->path);
	}
	if (physical < logical)
		physical = logical;
	if (size == 0)
		return kerr_set(err, "disk '%s' is empty", o->path);
	if (size % SECTOR_SIZE)
		return kerr_set(err,
				"disk '%s' size %llu is not a multiple of 512 bytes (resize it, "
				"e.g. truncate -s %lluK)",
				o->path, (unsigned long long)size,
				(unsigned long long)((size + 1023) / 1024));

	b->capacity = size / SECTOR_SIZE;
	b->cfg.capacity = htole64(b->capacity);
	b->cfg.blk_size = htole32(logical);
	b->cfg.physical_block_exp = ilog2_u32(physical / logical);
	b->cfg.alignment_offset = 0;
	b->cfg.min_io_size = htole16(1);
	b->cfg.opt_io_size = htole32(0);
	b->cfg.discard_sector_alignment = htole32(physical / SECTOR_SIZE);
	return 0;
}

static int blk_open(struct blk_dev *b, const struct blk_options *o, struct kerr *err)
{
	int flags = (o->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK;
	int fd, fl;

	if (o->direct)
		flags |= O_DIRECT;
	/* O_NONBLOCK: a FIFO given by mistake must not hang the open; cleared below. */
	fd = open(o->path, flags);
	if (fd < 0) {
		int e = errno;

		if (e == EINVAL && o->direct)
			return kerr_set(err,
					"disk '%s': direct=on is not supported by its file system "
					"(drop direct=on)",
					o->path);
		if (e == EISDIR)
			return kerr_set(err, "disk '%s' is not a regular file or block device",
					o->path);
		if (!o->readonly && (e == EROFS || e == EACCES))
			return kerr_set(err,
					"cannot open disk '%s' for writing: %s (add readonly=on)",
					o->path, strerror(e));
		return kerr_set(err, "cannot open disk '%s': %s", o->path, strerror(e));
	}
	if (blk_probe(b, fd, o, err) < 0)
		goto fail;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		kerr_set(err, "disk '%s': fcntl: %s", o->path, strerror(errno));
		goto fail;
	}
	/* Two VMMs writing one image corrupt it; readers may share. */
	if (flock(fd, (o->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			kerr_set(err, "disk '%s' is in use by another process (locked)", o->path);
		else
			kerr_set(err, "cannot lock disk '%s': %s", o->path, strerror(errno));
		goto fail;
	}
	b->be.fd = fd;
	return 0;
fail:
	close(fd);
	return -1;
}

/* Picks and starts the engine: io_uring if possible, unless KESTREL_BLK_ENGINE says sync. */
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
	if (!force_sync) {
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
