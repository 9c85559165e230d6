/* virtio-net RX in kestrel: frames read from the tap into the guest's receive buffers. */
#include "virtio/net_priv.h"

/* Host address of byte off of the writable side of a chain, or NULL. */
static uint8_t *chain_wbyte(const struct virtq_chain *c, size_t off)
{
	for (unsigned int i = c->nr_readable; i < c->nr_segs; i++) {
		if (off < c->segs[i].len)
			return (uint8_t *)c->segs[i].addr + off;
		off -= c->segs[i].len;
	}
	return NULL;
}

static void rx_count(struct net_dev *n, struct net_pair *p)
{
	n->stats.rx_frames++;
	n->stats.rx_bytes += p->frame_len - n->hdr_len;
}

/* A MRG_RXBUF frame that the whole queue cannot hold: give the buffers back empty. */
static void rx_give_up(struct net_dev *n, struct net_pair *p, struct virtqueue *vq)
{
	for (unsigned int i = 0; i < p->nheld; i++)
		virtq_push(vq, p->held[i].head, 0);
	n->stats.rx_no_room++;
	p->nheld = 0;
	p->rx_pending = false;
}

/*
 * Puts the pending frame into guest buffers: 1 when it is done with (delivered or dropped),
 * 0 when the queue ran out of buffers (the frame stays pending), -1 if the queue is broken.
 */
static int rx_place(struct net_dev *n, struct net_pair *p, bool *pushed)
{
	struct virtqueue *vq = &n->dev.vqs[rx_q(p->index)];
	struct virtq_chain *c = &n->chain;
	uint16_t one = htole16(1);
	int r;

	if (n->hdr_len == HDR_LEN_V1 && p->frame_off == 0 && p->nheld == 0)
		memcpy(p->buf + NUM_BUFFERS_OFF, &one, sizeof(one));

	if (!virtio_has_feature(&n->dev, VIRTIO_NET_F_MRG_RXBUF)) {
		r = virtq_pop(vq, c);
		if (r <= 0)
			return r;
		if (c->writable_bytes < p->frame_len) {
			/* Keep the buffer for a frame that fits. */
			virtq_unpop(vq);
			n->stats.rx_too_big++;
			p->rx_pending = false;
			return 1;
		}
		virtq_chain_write(c, 0, p->buf, p->frame_len);
		virtq_push(vq, c->head, (uint32_t)p->frame_len);
		*pushed = true;
		rx_count(n, p);
		p->rx_pending = false;
		return 1;
	}

	while (p->frame_off < p->frame_len) {
		size_t len;

		/* held_cap is vq->size; both, in case they ever part. */
		if (p->nheld >= vq->size || p->nheld >= p->held_cap) {
			rx_give_up(n, p, vq);
			*pushed = true;
			return 1;
		}
		r = virtq_pop(vq, c);
		if (r <= 0)
			return r;
		if (c->writable_bytes == 0 || (p->nheld == 0 && c->writable_bytes < n->hdr_len)) {
			/* The first buffer must hold the whole header (§5.1.6.3.1). */
			virtq_push(vq, c->head, 0);
			*pushed = true;
			n->stats.rx_bad_buffers++;
			continue;
		}
		len = virtq_chain_write(c, 0, p->buf + p->frame_off, p->frame_len - p->frame_off);
		if (p->nheld == 0) {
			p->nb_ptr[0] = chain_wbyte(c, NUM_BUFFERS_OFF);
			p->nb_ptr[1] = chain_wbyte(c, NUM_BUFFERS_OFF + 1);
		}
		p->held[p->nheld++] = (struct held_buf){c->head, (uint32_t)len};
		p->frame_off += len;
	}
	/* Whole frame placed: fix num_buffers, then publish all its buffers at once. */
	if (p->nheld > 1 && p->nb_ptr[0] && p->nb_ptr[1]) {
		uint16_t nb = htole16((uint16_t)p->nheld);

		memcpy(p->nb_ptr[0], &nb, 1);
		memcpy(p->nb_ptr[1], (uint8_t *)&nb + 1, 1);
	}
	for (unsigned int i = 0; i < p->nheld; i++)
		virtq_push(vq, p->held[i].head, p->held[i].len);
	*pushed = true;
	rx_count(n, p);
	p->nheld = 0;
	p->rx_pending = false;
	return 1;
}

/* Reads one frame into the bounce buffer: 1 read (maybe dropped), 0 nothing to read, -1 stop
 * reading (EOF or the queue is detached). */
static int rx_read(struct net_dev *n, struct net_pair *p)
{
	ssize_t r;

	do {
		r = read(p->tap.h.fd, p->buf, NET_BUF_SIZE);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		n->stats.rx_errors++;
		return errno == EBADFD ? -1 : 0;
	}
	if (r == 0) {
		p->eof = true;
		return -1;
	}
	if ((size_t)r < n->hdr_len) {
		n->stats.rx_short++;
		return 1;
	}
	p->frame_len = (size_t)r;
	p->frame_off = 0;
	p->nheld = 0;
	p->rx_pending = true;
	return 1;
}

void net_rx_run(struct net_dev *n, struct net_pair *p)
{
	uint16_t q = rx_q(p->index);
	struct virtqueue *vq = &n->dev.vqs[q];
	unsigned int budget = RX_BUDGET;
	bool pushed = false, want = false;
	int r;

	if (!pair_served(n, p) || !vq->ready || p->index >= n->curr_pairs || p->eof)
		goto out;
	/* While we hold buffers the tap drives us; kicks are only wanted once we run dry. */
	virtq_disable_notify(vq);
	for (;;) {
		if (p->rx_pending) {
			r = rx_place(n, p, &pushed);
			if (r < 0) {
				set_broken(n);
				break;
			}
			if (r > 0)
				continue;
		} else if (virtq_has_avail(vq)) {
			if (!budget--) {
				want = true;
				break;
			}
			r = rx_read(n, p);
			if (r > 0)
				continue;
			want = r == 0;
			break;
		}
		/* No buffers: poll the tap no more until the guest kicks, unless some arrived. */
		if (virtq_enable_notify(vq)) {
			virtq_disable_notify(vq);
			continue;
		}
		break;
	}
out:
	p->rx_want = want;
	if (pushed)
		notify(n, q);
	pair_update(n, p);
}
