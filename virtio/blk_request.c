/*
 * virtio-blk requests: each chain the guest makes available is validated, turned into a
 * struct blk_req and handed to the I/O engine; completion writes the status byte and pushes
 * the chain back. Runs on the event-loop thread under b->lock (blk.c has the threading).
 */
#include "virtio/blk_priv.h"

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

void blk_notify_pending(struct blk_dev *b)
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
void blk_complete(struct blk_backend *be, struct blk_req *r, int res)
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

void blk_queue_notify(struct virtio_dev *d, uint16_t q)
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
