/* virtio-net TX in kestrel: the guest's transmit chains written to the tap. */
#include "virtio/net_priv.h"

/* Does the header ask only for offloads the driver negotiated? */
static bool tx_hdr_ok(const struct net_dev *n, const struct virtio_net_hdr *h)
{
	const struct virtio_dev *d = &n->dev;
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;

	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !virtio_has_feature(d, VIRTIO_NET_F_CSUM))
		return false;
	if ((h->gso_type & VIRTIO_NET_HDR_GSO_ECN) &&
	    (gso == VIRTIO_NET_HDR_GSO_NONE || !virtio_has_feature(d, VIRTIO_NET_F_HOST_ECN)))
		return false;
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return true;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return virtio_has_feature(d, VIRTIO_NET_F_HOST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return virtio_has_feature(d, VIRTIO_NET_F_HOST_TSO6);
	case VIRTIO_NET_HDR_GSO_UDP:
		return virtio_has_feature(d, VIRTIO_NET_F_HOST_UFO);
	default:
		return false;
	}
}

/* Writes one chain as a frame: 1 done (sent or dropped), 0 the tap is full. */
static int tx_one(struct net_dev *n, struct net_pair *p, const struct virtq_chain *c)
{
	struct virtio_net_hdr_mrg_rxbuf hdr;
	size_t total = c->readable_bytes, off = n->hdr_len;
	int cnt = 1;
	ssize_t w;

	/* Transmit buffers are all driver-written (§5.1.6.2): anything else is malformed. */
	if (c->nr_readable != c->nr_segs || total < n->hdr_len ||
	    total > n->hdr_len + NET_MAX_FRAME) {
		n->stats.tx_malformed++;
		return 1;
	}
	if (total == n->hdr_len) {
		n->stats.tx_empty++;
		return 1;
	}
	/* Our own copy: the guest may rewrite the header while the tap reads it. */
	memset(&hdr, 0, sizeof(hdr));
	virtq_chain_read(c, 0, &hdr, n->hdr_len);
	if (!tx_hdr_ok(n, &hdr.hdr)) {
		n->stats.tx_malformed++;
		return 1;
	}
	hdr.num_buffers = 0;
	n->iov[0] = (struct iovec){&hdr, n->hdr_len};
	for (unsigned int i = 0; i < c->nr_readable; i++) {
		const struct virtq_seg *s = &c->segs[i];

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		if (cnt == IOV_MAX) {
			n->stats.tx_malformed++;
			return 1;
		}
		n->iov[cnt++] = (struct iovec){(uint8_t *)s->addr + off, s->len - off};
		off = 0;
	}
	do {
		if (n->tap.is_tap) {
			w = writev(p->tap.h.fd, n->iov, cnt);
		} else {
			struct msghdr msg = {.msg_iov = n->iov, .msg_iovlen = (size_t)cnt};

			/* A vanished peer must not SIGPIPE the VMM. */
			w = sendmsg(p->tap.h.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
	} while (w < 0 && errno == EINTR);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		n->stats.tx_blocked++;
		return 0;
	}
	if (w < 0 || (size_t)w != total) {
		n->stats.tx_errors++;
		return 1;
	}
	n->stats.tx_frames++;
	n->stats.tx_bytes += total - n->hdr_len;
	return 1;
}

void net_tx_run(struct net_dev *n, struct net_pair *p)
{
	uint16_t q = tx_q(p->index);
	struct virtqueue *vq = &n->dev.vqs[q];
	struct virtq_chain *c = &n->chain;
	unsigned int sent = 0;
	int r = 0;

	if (!pair_served(n, p) || !vq->ready || p->tx_blocked)
		goto out;
	for (;;) {
		virtq_disable_notify(vq);
		while ((r = virtq_pop(vq, c)) == 1) {
			if (!tx_one(n, p, c)) {
				/* Keep the chain; EPOLLOUT resumes us. */
				virtq_unpop(vq);
				p->tx_blocked = true;
				goto out;
			}
			virtq_push(vq, c->head, 0);
			sent++;
		}
		if (r < 0) {
			set_broken(n);
			break;
		}
		if (!virtq_enable_notify(vq))
			break;
	}
out:
	if (sent) {
		notify(n, q);
		/* How much the guest queued before we ran decides how we are scheduled. */
		event_loop_note_pass(n->loop, sent);
	}
	pair_update(n, p);
	if (p->tx_blocked && !(p->tap.events & EPOLLOUT)) {
		/* Cannot wait for the fd: the next kick retries. */
		p->tx_blocked = false;
		virtq_enable_notify(vq);
	}
}

/* The pair's tap fd is readable or writable: the device's loop, or for tap_in its RX loop. */
void net_on_tap(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;
	struct net_dev *n = p->n;

	lock(n);
	if (p->tx_blocked && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		p->tx_blocked = false;
		net_tx_run(n, p);
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		net_rx_run(n, p);
	pair_update(n, p);
	unlock(n);
}
