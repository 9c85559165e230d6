/*
 * virtio-net device model (VIRTIO 1.2 §5.1): features, config space, the control queue, and
 * the data path in kestrel (tap <-> rings on the event loop) or handed to vhost-net.
 */
#include "virtio/net.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "virtio/net_tap.h"
#include "virtio/net_vhost.h"

#define HDR_LEN_V1 sizeof(struct virtio_net_hdr_mrg_rxbuf)
#define HDR_LEN_LEGACY sizeof(struct virtio_net_hdr)
#define NUM_BUFFERS_OFF offsetof(struct virtio_net_hdr_mrg_rxbuf, num_buffers)
/* Largest frame a tap hands us: a 64 KiB GSO packet plus Ethernet and VLAN headers. */
#define NET_MAX_FRAME (65535 + 14 + 4)
/* The RX bounce buffer: header + frame, with room to spare so a read never truncates. */
#define NET_BUF_SIZE (128 * 1024)
/* Frames read per wake-up, so one busy tap cannot starve the event loop; the level-triggered
 * EPOLLIN brings us back. */
#define RX_BUDGET 64
/* The config space through mtu (no speed/duplex, no RSS). */
#define NET_CONFIG_LEN (offsetof(struct virtio_net_config, mtu) + sizeof(uint16_t))
#define NET_DEFAULT_MTU 1500

#define F(bit) (1ULL << (bit))
#define GUEST_OFFLOAD_MASK                                                                         \
	(F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6) |    \
	 F(VIRTIO_NET_F_GUEST_ECN) | F(VIRTIO_NET_F_GUEST_UFO))

/* An fd in the event loop with the events we currently want (none: not registered). */
struct held_buf {
	uint16_t head;
	uint32_t len;
};

struct net_dev;

/* Our own call eventfd for a vhost vring when the transport has no irqfd for it. */
struct own_call {
	struct event_handler h; /* fd -1 when not in use */
	struct net_dev *n;
	uint16_t q;
};

struct net_pair {
	struct net_dev *n;
	unsigned int index;
	struct event_watch tap; /* EPOLLIN while RX has buffers, EPOLLOUT while TX is blocked */
	bool rx_want;		/* the guest has buffers: poll the tap for input */
	bool tx_blocked;	/* the tap was full: wait for EPOLLOUT */
	bool eof;		/* a raw fd's peer went away: never read again */

	/* The RX frame being placed (read, not yet all in guest buffers). */
	uint8_t *buf;
	bool rx_pending;
	size_t frame_len, frame_off;
	/* MRG_RXBUF: buffers filled so far, pushed when complete. Sized from the RX queue's
	 * negotiated size at activation (the guest chooses it), freed at reset. */
	struct held_buf *held;
	unsigned int nheld, held_cap;
	uint8_t *nb_ptr[2]; /* the first buffer's num_buffers bytes */

	/* vhost */
	bool vhost_on;	    /* backend set: the kernel serves this pair */
	bool kick_taken[2]; /* we told the transport to stop polling the kick fd */
	struct own_call call[2];
};

struct net_dev {
	struct virtio_dev dev;
	struct event_loop *loop;
	struct net_tap tap;
	struct net_vhost vhost;
	bool use_vhost; /* /dev/vhost-net is open: hand the rings over at activation */
	char backend[320];
	unsigned int max_pairs;
	uint16_t mtu;
	uint8_t mac_default[6];

	/* Data path, control queue, activate/reset: the event-loop thread, under lock. */
	pthread_mutex_t lock;
	bool active, broken, vhost_running;
	unsigned int hdr_len;
	unsigned int data_pairs; /* pairs the driver has: max_pairs with MQ, else 1 */
	unsigned int curr_pairs; /* pairs in use (VQ_PAIRS_SET) */
	bool has_ctrl;
	uint16_t ctrl_q;
	uint64_t guest_offloads;
	bool promisc, allmulti;
	unsigned int uc_entries, mc_entries;
	bool uc_overflow, mc_overflow;
	uint8_t uc_table[VIRTIO_NET_MAC_TABLE_MAX][6], mc_table[VIRTIO_NET_MAC_TABLE_MAX][6];
	struct virtio_irqs irqs;       /* raised once the lock is dropped */
	struct virtq_chain chain;      /* RX and TX, one at a time */
	struct virtq_chain ctrl_chain; /* its commands may run RX (VQ_PAIRS_SET) */
	struct iovec iov[VIRTQ_MAX_SEGS + 1];
	struct net_pair pairs[VIRTIO_NET_MAX_PAIRS];
	struct virtio_net_stats stats;

	/* Config space: vCPU threads read it, the control queue writes the MAC. */
	pthread_mutex_t cfg_lock;
	uint8_t mac[6];
	uint16_t status;
};

static struct net_dev *to_net(const struct virtio_dev *d)
{
	return d->priv;
}

static uint16_t rx_q(unsigned int pair)
{
	return (uint16_t)(2 * pair);
}

static uint16_t tx_q(unsigned int pair)
{
	return (uint16_t)(2 * pair + 1);
}

static void lock(struct net_dev *n)
{
	pthread_mutex_lock(&n->lock);
}

static void unlock(struct net_dev *n)
{
	struct virtio_irqs irqs = virtio_irqs_take(&n->irqs);

	pthread_mutex_unlock(&n->lock);
	virtio_irqs_raise(&n->dev, irqs);
}

static void notify(struct net_dev *n, uint16_t q)
{
	virtio_irqs_queue(&n->dev, &n->irqs, q);
}

/* The guest broke a queue: stop until it resets us (virtq_pop's contract). */
static void set_broken(struct net_dev *n)
{
	if (!n->broken)
		n->stats.queue_errors++;
	n->broken = true;
	n->irqs.needs_reset = true;
}

static void watch_set(struct net_dev *n, struct event_watch *w, uint32_t events)
{
	event_loop_watch(n->loop, w, events);
}

static bool pair_served(const struct net_dev *n, const struct net_pair *p)
{
	return n->active && !n->broken && !p->vhost_on && p->index < n->data_pairs;
}

static void pair_update(struct net_dev *n, struct net_pair *p)
{
	uint32_t ev = 0;

	if (pair_served(n, p)) {
		/* A detached tap queue reports EPOLLERR forever: don't watch it at all. */
		if (p->rx_want && !p->eof && p->index < n->curr_pairs)
			ev |= EPOLLIN;
		if (p->tx_blocked)
			ev |= EPOLLOUT;
	}
	watch_set(n, &p->tap, ev);
}

/* ---- RX: tap -> guest ---- */

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

static void rx_run(struct net_dev *n, struct net_pair *p)
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

/* ---- TX: guest -> tap ---- */

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

static void tx_run(struct net_dev *n, struct net_pair *p)
{
	uint16_t q = tx_q(p->index);
	struct virtqueue *vq = &n->dev.vqs[q];
	struct virtq_chain *c = &n->chain;
	bool pushed = false;
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
			pushed = true;
		}
		if (r < 0) {
			set_broken(n);
			break;
		}
		if (!virtq_enable_notify(vq))
			break;
	}
out:
	if (pushed)
		notify(n, q);
	pair_update(n, p);
	if (p->tx_blocked && !(p->tap.events & EPOLLOUT)) {
		/* Cannot wait for the fd: the next kick retries. */
		p->tx_blocked = false;
		virtq_enable_notify(vq);
	}
}

/* The pair's tap fd is readable or writable (event-loop thread). */
static void on_tap(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;
	struct net_dev *n = p->n;

	lock(n);
	if (p->tx_blocked && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		p->tx_blocked = false;
		tx_run(n, p);
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		rx_run(n, p);
	pair_update(n, p);
	unlock(n);
}

/* ---- control queue ---- */

static int set_pairs(struct net_dev *n, unsigned int k)
{
	/* Attach before detaching, so the tap never has no queue at all. */
	for (unsigned int i = 0; i < k; i++)
		if (net_tap_enable_queue(&n->tap, i, true) < 0)
			return -1;
	for (unsigned int i = k; i < n->tap.nr_fds; i++)
		if (net_tap_enable_queue(&n->tap, i, false) < 0)
			return -1;
	n->curr_pairs = k;
	for (unsigned int i = 0; i < n->data_pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		if (i < k && pair_served(n, p) && !p->rx_want)
			rx_run(n, p);
		pair_update(n, p);
	}
	return 0;
}

static uint8_t ctrl_mac_table(struct net_dev *n, const struct virtq_chain *c, size_t len)
{
	uint8_t tables[2][VIRTIO_NET_MAC_TABLE_MAX][6];
	unsigned int kept[2];
	bool overflow[2];
	size_t off = sizeof(struct virtio_net_ctrl_hdr);

	/* Two tables, each a le32 count then count MACs; exactly filling the command. */
	for (int t = 0; t < 2; t++) {
		uint32_t entries;

		if (len < sizeof(entries))
			return VIRTIO_NET_ERR;
		virtq_chain_read(c, off, &entries, sizeof(entries));
		entries = le32toh(entries);
		off += sizeof(entries);
		len -= sizeof(entries);
		if (entries > len / 6)
			return VIRTIO_NET_ERR;
		kept[t] = entries < VIRTIO_NET_MAC_TABLE_MAX ? entries : VIRTIO_NET_MAC_TABLE_MAX;
		overflow[t] = entries > VIRTIO_NET_MAC_TABLE_MAX;
		virtq_chain_read(c, off, tables[t], (size_t)kept[t] * 6);
		off += (size_t)entries * 6;
		len -= (size_t)entries * 6;
	}
	if (len)
		return VIRTIO_NET_ERR;
	memcpy(n->uc_table, tables[0], (size_t)kept[0] * 6);
	memcpy(n->mc_table, tables[1], (size_t)kept[1] * 6);
	n->uc_entries = kept[0];
	n->mc_entries = kept[1];
	n->uc_overflow = overflow[0];
	n->mc_overflow = overflow[1];
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_handle(struct net_dev *n, const struct virtq_chain *c)
{
	const struct virtio_dev *d = &n->dev;
	struct virtio_net_ctrl_hdr h;
	size_t off = sizeof(h), len;

	if (c->readable_bytes < sizeof(h))
		return VIRTIO_NET_ERR;
	virtq_chain_read(c, 0, &h, sizeof(h));
	len = c->readable_bytes - sizeof(h);

	switch (h.class) {
	case VIRTIO_NET_CTRL_RX: {
		uint8_t on;

		if (!virtio_has_feature(d, VIRTIO_NET_F_CTRL_RX) || len != 1)
			return VIRTIO_NET_ERR;
		virtq_chain_read(c, off, &on, 1);
		if (h.cmd == VIRTIO_NET_CTRL_RX_PROMISC)
			n->promisc = on != 0;
		else if (h.cmd == VIRTIO_NET_CTRL_RX_ALLMULTI)
			n->allmulti = on != 0;
		else
			return VIRTIO_NET_ERR; /* the others need CTRL_RX_EXTRA */
		return VIRTIO_NET_OK;
	}
	case VIRTIO_NET_CTRL_MAC:
		if (h.cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET) {
			if (!virtio_has_feature(d, VIRTIO_NET_F_CTRL_RX))
				return VIRTIO_NET_ERR;
			return ctrl_mac_table(n, c, len);
		}
		if (h.cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET) {
			uint8_t mac[6];

			if (!virtio_has_feature(d, VIRTIO_NET_F_CTRL_MAC_ADDR) || len != 6)
				return VIRTIO_NET_ERR;
			virtq_chain_read(c, off, mac, 6);
			pthread_mutex_lock(&n->cfg_lock);
			memcpy(n->mac, mac, 6);
			pthread_mutex_unlock(&n->cfg_lock);
			return VIRTIO_NET_OK;
		}
		return VIRTIO_NET_ERR;
	case VIRTIO_NET_CTRL_ANNOUNCE:
		if (h.cmd != VIRTIO_NET_CTRL_ANNOUNCE_ACK ||
		    !virtio_has_feature(d, VIRTIO_NET_F_GUEST_ANNOUNCE) || len != 0)
			return VIRTIO_NET_ERR;
		pthread_mutex_lock(&n->cfg_lock);
		n->status &= (uint16_t)~VIRTIO_NET_S_ANNOUNCE;
		pthread_mutex_unlock(&n->cfg_lock);
		return VIRTIO_NET_OK;
	case VIRTIO_NET_CTRL_MQ: {
		uint16_t k;

		if (h.cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET ||
		    !virtio_has_feature(d, VIRTIO_NET_F_MQ) || len != sizeof(k))
			return VIRTIO_NET_ERR;
		virtq_chain_read(c, off, &k, sizeof(k));
		k = le16toh(k);
		if (k < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || k > n->max_pairs)
			return VIRTIO_NET_ERR;
		return set_pairs(n, k) < 0 ? VIRTIO_NET_ERR : VIRTIO_NET_OK;
	}
	case VIRTIO_NET_CTRL_GUEST_OFFLOADS: {
		uint64_t v;

		if (h.cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET ||
		    !virtio_has_feature(d, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) || len != sizeof(v))
			return VIRTIO_NET_ERR;
		virtq_chain_read(c, off, &v, sizeof(v));
		v = le64toh(v);
		/* Only offloads the driver negotiated may be switched on (§5.1.6.5.6.1). */
		if (v & ~(d->guest_features & GUEST_OFFLOAD_MASK))
			return VIRTIO_NET_ERR;
		if (net_tap_set_offload(&n->tap, net_tap_offload_flags(v)) < 0)
			return VIRTIO_NET_ERR;
		n->guest_offloads = v;
		return VIRTIO_NET_OK;
	}
	default:
		return VIRTIO_NET_ERR;
	}
}

static void ctrl_run(struct net_dev *n)
{
	struct virtqueue *vq = &n->dev.vqs[n->ctrl_q];
	struct virtq_chain *c = &n->ctrl_chain;
	bool pushed = false;
	int r = 0;

	if (!vq->ready)
		return;
	for (;;) {
		virtq_disable_notify(vq);
		while (!n->broken && (r = virtq_pop(vq, c)) == 1) {
			uint8_t ack;

			/* The ack is the last writable byte; without one nobody hears back. */
			if (c->writable_bytes == 0) {
				n->stats.ctrl_malformed++;
				virtq_push(vq, c->head, 0);
				pushed = true;
				continue;
			}
			ack = ctrl_handle(n, c);
			if (ack == VIRTIO_NET_OK)
				n->stats.ctrl_ok++;
			else
				n->stats.ctrl_err++;
			virtq_chain_write(c, c->writable_bytes - 1, &ack, 1);
			virtq_push(vq, c->head, 1);
			pushed = true;
		}
		if (r < 0)
			set_broken(n);
		if (n->broken || !virtq_enable_notify(vq))
			break;
	}
	if (pushed)
		notify(n, n->ctrl_q);
}

/* ---- vhost ---- */

static void on_own_call(void *opaque, uint32_t events)
{
	struct own_call *oc = opaque;
	struct virtio_dev *d = &oc->n->dev;
	uint64_t v;

	(void)events;
	/* vhost already applied interrupt suppression before signalling. */
	if (read(oc->h.fd, &v, sizeof(v)) == sizeof(v) && d->transport)
		d->transport->signal_queue(d, oc->q);
}

static void own_call_close(struct net_dev *n, struct own_call *oc)
{
	if (oc->h.fd < 0)
		return;
	event_loop_del(n->loop, &oc->h);
	close(oc->h.fd);
	oc->h.fd = -1;
}

/* The eventfd vhost signals for queue q: the transport's irqfd, or one we poll ourselves. */
static int call_fd_for(struct net_dev *n, struct own_call *oc, uint16_t q)
{
	const struct virtio_transport_ops *t = n->dev.transport;
	int fd = t->call_fd(&n->dev, q);

	if (fd >= 0) {
		own_call_close(n, oc);
		return fd;
	}
	if (oc->h.fd >= 0)
		return oc->h.fd;
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -1;
	oc->h = (struct event_handler){fd, on_own_call, oc};
	oc->n = n;
	oc->q = q;
	if (event_loop_add(n->loop, &oc->h, EPOLLIN, NULL) < 0) {
		close(fd);
		oc->h.fd = -1;
		return -1;
	}
	return fd;
}

static void vhost_stop_pair(struct net_dev *n, struct net_pair *p)
{
	struct virtio_dev *d = &n->dev;

	if (p->vhost_on)
		net_vhost_set_backend(&n->vhost, p->index, -1, NULL);
	p->vhost_on = false;
	for (unsigned int i = 0; i < 2; i++) {
		uint16_t q = (uint16_t)(2 * p->index + i), base = 0;

		if (p->kick_taken[i]) {
			if (net_vhost_stop_vring(&n->vhost, p->index, i, &base) == 0)
				d->vqs[q].last_avail_idx = base;
			d->transport->poll_kicks(d, q, true);
			p->kick_taken[i] = false;
		}
		own_call_close(n, &p->call[i]);
	}
}

static void vhost_stop(struct net_dev *n)
{
	for (unsigned int i = 0; i < n->max_pairs; i++)
		vhost_stop_pair(n, &n->pairs[i]);
	n->vhost_running = false;
}

static int vhost_start_pair(struct net_dev *n, struct net_pair *p, uint64_t features,
			    const struct vhost_memory *mem, struct kerr *err)
{
	struct virtio_dev *d = &n->dev;
	const struct virtio_transport_ops *t = d->transport;

	if (net_vhost_setup(&n->vhost, p->index, features, mem, err) < 0)
		return -1;
	for (unsigned int i = 0; i < 2; i++) {
		uint16_t q = (uint16_t)(2 * p->index + i);
		struct virtqueue *vq = &d->vqs[q];
		struct net_vhost_vring r = {
		    .index = i, .num = vq->size, .base = vq->last_avail_idx};

		net_vhost_vring_addr(&r.addr, i, vq);
		/* The kernel reads the kick eventfd from now on, not our event loop. */
		t->poll_kicks(d, q, false);
		p->kick_taken[i] = true;
		r.kick_fd = t->kick_fd(d, q);
		r.call_fd = call_fd_for(n, &p->call[i], q);
		if (r.kick_fd < 0 || r.call_fd < 0)
			return kerr_set(err, "no kick or call eventfd for queue %u", q);
		if (net_vhost_start_vring(&n->vhost, p->index, &r, err) < 0)
			return -1;
	}
	return 0;
}

/*
 * Hands every data pair to vhost-net. Returns 0 on success, 1 if vhost could not start and
 * nothing was handed over (serve the pairs in kestrel), -1 if it failed after a pair was
 * running (the rings are no longer ours to continue: NEEDS_RESET).
 */
static int vhost_start(struct net_dev *n)
{
	struct virtio_dev *d = &n->dev;
	const struct virtio_transport_ops *t = d->transport;
	struct kerr err = {.msg = ""};
	struct vhost_memory *mem = NULL;
	uint64_t features = net_vhost_features(d->guest_features, n->vhost.features);
	bool any = false;
	int rc = 1;

	if (!t || !t->kick_fd || !t->poll_kicks || !t->call_fd) {
		kerr_set(&err, "the transport has no kick/call eventfds");
		goto fail;
	}
	mem = net_vhost_mem_table(d->mem);
	if (!mem) {
		kerr_set(&err, "cannot build the memory table");
		goto fail;
	}
	for (unsigned int i = 0; i < n->data_pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		if (!d->vqs[rx_q(i)].ready || !d->vqs[tx_q(i)].ready)
			continue; /* the driver does not use this pair */
		if (vhost_start_pair(n, p, features, mem, &err) < 0)
			goto fail;
	}
	/* All rings are set up: now let the kernel run them. */
	for (unsigned int i = 0; i < n->data_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		uint64_t one = 1;

		if (!p->kick_taken[0])
			continue;
		if (net_vhost_set_backend(&n->vhost, i, n->tap.fds[i], &err) < 0) {
			rc = any ? -1 : 1;
			goto fail;
		}
		p->vhost_on = true;
		any = true;
		/* Buffers made available before the hand-over had their kicks eaten: kick once. */
		for (unsigned int q = 0; q < 2; q++)
			if (write(t->kick_fd(d, (uint16_t)(2 * i + q)), &one, sizeof(one)) < 0)
				n->stats.vhost_failures++;
	}
	free(mem);
	n->vhost_running = true;
	return 0;
fail:
	free(mem);
	n->stats.vhost_failures++;
	if (t && t->poll_kicks)
		vhost_stop(n);
	snprintf(n->backend, sizeof(n->backend), "tap (vhost-net failed to start: %.200s)",
		 err.msg);
	return rc;
}

static void net_queue_irq_changed(struct virtio_dev *d, uint16_t q)
{
	struct net_dev *n = to_net(d);
	struct net_pair *p;
	unsigned int i = q % 2;
	int fd;

	lock(n);
	if (!n->vhost_running || q >= 2 * n->data_pairs)
		goto out;
	p = &n->pairs[q / 2];
	if (!p->kick_taken[i])
		goto out;
	fd = call_fd_for(n, &p->call[i], q);
	if (fd < 0 || net_vhost_set_call(&n->vhost, p->index, i, fd) < 0) {
		n->stats.vhost_failures++;
		goto out;
	}
	/* One raised on the old fd during the switch may be lost: a spurious one is harmless. */
	n->irqs.queues |= 1ULL << q;
out:
	unlock(n);
}

/* ---- device ops ---- */

int virtio_net_check_features(uint64_t f, const char **why)
{
	static const struct {
		unsigned int bit;
		uint64_t needs; /* any of these */
		const char *rule;
	} rules[] = {
	    {VIRTIO_NET_F_GUEST_TSO4, F(VIRTIO_NET_F_GUEST_CSUM), "GUEST_TSO4 needs GUEST_CSUM"},
	    {VIRTIO_NET_F_GUEST_TSO6, F(VIRTIO_NET_F_GUEST_CSUM), "GUEST_TSO6 needs GUEST_CSUM"},
	    {VIRTIO_NET_F_GUEST_UFO, F(VIRTIO_NET_F_GUEST_CSUM), "GUEST_UFO needs GUEST_CSUM"},
	    {VIRTIO_NET_F_GUEST_ECN, F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6),
	     "GUEST_ECN needs GUEST_TSO4 or GUEST_TSO6"},
	    {VIRTIO_NET_F_HOST_TSO4, F(VIRTIO_NET_F_CSUM), "HOST_TSO4 needs CSUM"},
	    {VIRTIO_NET_F_HOST_TSO6, F(VIRTIO_NET_F_CSUM), "HOST_TSO6 needs CSUM"},
	    {VIRTIO_NET_F_HOST_UFO, F(VIRTIO_NET_F_CSUM), "HOST_UFO needs CSUM"},
	    {VIRTIO_NET_F_HOST_ECN, F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6),
	     "HOST_ECN needs HOST_TSO4 or HOST_TSO6"},
	    {VIRTIO_NET_F_CTRL_RX, F(VIRTIO_NET_F_CTRL_VQ), "CTRL_RX needs CTRL_VQ"},
	    {VIRTIO_NET_F_CTRL_VLAN, F(VIRTIO_NET_F_CTRL_VQ), "CTRL_VLAN needs CTRL_VQ"},
	    {VIRTIO_NET_F_GUEST_ANNOUNCE, F(VIRTIO_NET_F_CTRL_VQ), "GUEST_ANNOUNCE needs CTRL_VQ"},
	    {VIRTIO_NET_F_MQ, F(VIRTIO_NET_F_CTRL_VQ), "MQ needs CTRL_VQ"},
	    {VIRTIO_NET_F_CTRL_MAC_ADDR, F(VIRTIO_NET_F_CTRL_VQ), "CTRL_MAC_ADDR needs CTRL_VQ"},
	    {VIRTIO_NET_F_CTRL_GUEST_OFFLOADS, F(VIRTIO_NET_F_CTRL_VQ),
	     "CTRL_GUEST_OFFLOADS needs CTRL_VQ"},
	    {VIRTIO_NET_F_CTRL_RX_EXTRA, F(VIRTIO_NET_F_CTRL_RX), "CTRL_RX_EXTRA needs CTRL_RX"},
	};

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		if ((f & F(rules[i].bit)) && !(f & rules[i].needs)) {
			if (why)
				*why = rules[i].rule;
			return -1;
		}
	}
	return 0;
}

static void pair_clear(struct net_dev *n, struct net_pair *p)
{
	p->rx_want = false;
	p->tx_blocked = false;
	p->rx_pending = false;
	p->nheld = 0;
	free(p->held);
	p->held = NULL;
	p->held_cap = 0;
	pair_update(n, p);
}

/* Per-queue state, sized from what the driver set up (checked by the transport). */
static int pair_alloc(struct net_dev *n, struct net_pair *p)
{
	const struct virtqueue *vq = &n->dev.vqs[rx_q(p->index)];

	if (!vq->ready || !vq->size)
		return 0;
	p->held = calloc(vq->size, sizeof(*p->held));
	if (!p->held)
		return -1;
	p->held_cap = vq->size;
	return 0;
}

static int net_activate(struct virtio_dev *d)
{
	struct net_dev *n = to_net(d);
	uint64_t f = d->guest_features;
	int rc = 0;

	lock(n);
	if (virtio_net_check_features(f, NULL) < 0) {
		n->stats.feature_errors++;
		rc = -1;
		goto out;
	}
	n->hdr_len =
	    (f & (F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF))) ? HDR_LEN_V1 : HDR_LEN_LEGACY;
	/* Without MQ the driver has one pair and the control queue is queue 2 (§5.1.2). */
	n->data_pairs = (f & F(VIRTIO_NET_F_MQ)) ? n->max_pairs : 1;
	n->has_ctrl = (f & F(VIRTIO_NET_F_CTRL_VQ)) != 0;
	n->ctrl_q = (uint16_t)(2 * n->data_pairs);
	n->guest_offloads = f & GUEST_OFFLOAD_MASK;
	n->promisc = true;
	n->allmulti = false;
	n->uc_entries = n->mc_entries = 0;
	n->uc_overflow = n->mc_overflow = false;
	if (net_tap_set_vnet_hdr_len(&n->tap, (int)n->hdr_len) < 0) {
		rc = -1;
		goto out;
	}
	/* A tap that refuses an offload just never sends such frames: nothing to fail. */
	if (net_tap_set_offload(&n->tap, net_tap_offload_flags(n->guest_offloads)) < 0)
		n->stats.rx_errors++;
	n->active = true;
	n->broken = false;
	n->curr_pairs = 1;
	for (unsigned int i = 0; i < n->max_pairs; i++)
		pair_clear(n, &n->pairs[i]);
	for (unsigned int i = 0; i < n->data_pairs; i++) {
		if (pair_alloc(n, &n->pairs[i]) < 0) {
			n->active = false;
			rc = -1;
			goto out;
		}
	}
	/* vhost first: a pair it serves must never be read by the event loop too. */
	if (n->use_vhost && vhost_start(n) < 0) {
		n->active = false;
		rc = -1;
		goto out;
	}
	if (set_pairs(n, 1) < 0)
		n->stats.rx_errors++;
	for (unsigned int i = 0; i < n->data_pairs; i++) {
		tx_run(n, &n->pairs[i]);
		rx_run(n, &n->pairs[i]);
	}
out:
	unlock(n);
	return rc;
}

static void net_reset(struct virtio_dev *d)
{
	struct net_dev *n = to_net(d);

	lock(n);
	if (n->vhost_running)
		vhost_stop(n);
	n->active = false;
	n->broken = false;
	n->curr_pairs = 1;
	n->data_pairs = 1;
	n->has_ctrl = false;
	for (unsigned int i = 0; i < n->max_pairs; i++)
		pair_clear(n, &n->pairs[i]);
	if (n->use_vhost)
		snprintf(n->backend, sizeof(n->backend), "vhost-net");
	pthread_mutex_lock(&n->cfg_lock);
	memcpy(n->mac, n->mac_default, 6);
	n->status = VIRTIO_NET_S_LINK_UP;
	pthread_mutex_unlock(&n->cfg_lock);
	n->irqs = (struct virtio_irqs){0};
	unlock(n);
}

static void net_queue_notify(struct virtio_dev *d, uint16_t q)
{
	struct net_dev *n = to_net(d);

	lock(n);
	if (!n->active || n->broken)
		goto out;
	if (n->has_ctrl && q == n->ctrl_q)
		ctrl_run(n);
	else if (q < 2 * n->data_pairs && q % 2 == 0)
		rx_run(n, &n->pairs[q / 2]);
	else if (q < 2 * n->data_pairs)
		tx_run(n, &n->pairs[q / 2]);
out:
	unlock(n);
}

static void net_config_read(struct virtio_dev *d, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct net_dev *n = to_net(d);
	struct virtio_net_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	pthread_mutex_lock(&n->cfg_lock);
	memcpy(cfg.mac, n->mac, 6);
	cfg.status = htole16(n->status);
	pthread_mutex_unlock(&n->cfg_lock);
	cfg.max_virtqueue_pairs = htole16((uint16_t)n->max_pairs);
	cfg.mtu = htole16(n->mtu);
	memset(data, 0, len);
	if (offset >= NET_CONFIG_LEN)
		return;
	if (len > NET_CONFIG_LEN - offset)
		len = NET_CONFIG_LEN - offset;
	memcpy(data, (const uint8_t *)&cfg + offset, len);
}

static void net_config_write(struct virtio_dev *d, uint32_t offset, const uint8_t *data,
			     uint32_t len)
{
	struct net_dev *n = to_net(d);

	/* Only the MAC, and only by a driver that cannot set it through the control queue. */
	if (virtio_has_feature(d, VIRTIO_NET_F_CTRL_MAC_ADDR) || offset >= 6 || len > 6 - offset)
		return;
	pthread_mutex_lock(&n->cfg_lock);
	memcpy(n->mac + offset, data, len);
	pthread_mutex_unlock(&n->cfg_lock);
}

static const struct virtio_dev_ops net_ops = {
    .config_read = net_config_read,
    .config_write = net_config_write,
    .activate = net_activate,
    .reset = net_reset,
    .queue_notify = net_queue_notify,
    .queue_irq_changed = net_queue_irq_changed,
};

/* ---- create / destroy ---- */

void virtio_net_default_mac(uint8_t mac[6], const char *name, unsigned int index)
{
	uint32_t h = 2166136261u; /* FNV-1a: stable across runs and builds */

	for (const char *s = name ? name : ""; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	for (int i = 0; i < 4; i++)
		h = (h ^ (uint8_t)(index >> (8 * i))) * 16777619u;
	/* 52:54:00 is locally administered and unicast, as QEMU's default prefix. */
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

static uint64_t offered_features(const struct net_dev *n, const struct net_options *o)
{
	uint64_t f = F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS) | F(VIRTIO_NET_F_MRG_RXBUF) |
		     F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_RING_F_INDIRECT_DESC) |
		     F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) |
		     F(VIRTIO_NET_F_CTRL_MAC_ADDR) | F(VIRTIO_NET_F_GUEST_ANNOUNCE) |
		     F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);
	unsigned int tun = n->tap.offloads;

	if (o->mtu)
		f |= F(VIRTIO_NET_F_MTU);
	if (n->max_pairs > 1)
		f |= F(VIRTIO_NET_F_MQ);
	/* A raw (test) fd has no one to do offloads for us: offer none. */
	if (n->tap.is_tap) {
		/* A vnet-header tap takes partial checksums and TSO frames from any writer. */
		f |= F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6) |
		     F(VIRTIO_NET_F_HOST_ECN);
		if (tun & TUN_F_CSUM)
			f |= F(VIRTIO_NET_F_GUEST_CSUM);
		if ((tun & TUN_F_CSUM) && (tun & TUN_F_TSO4))
			f |= F(VIRTIO_NET_F_GUEST_TSO4);
		if ((tun & TUN_F_CSUM) && (tun & TUN_F_TSO6))
			f |= F(VIRTIO_NET_F_GUEST_TSO6);
		if ((tun & TUN_F_CSUM) && (tun & TUN_F_TSO_ECN) &&
		    (tun & (TUN_F_TSO4 | TUN_F_TSO6)))
			f |= F(VIRTIO_NET_F_GUEST_ECN);
		if (tun & TUN_F_UFO)
			f |= F(VIRTIO_NET_F_HOST_UFO) |
			     ((tun & TUN_F_CSUM) ? F(VIRTIO_NET_F_GUEST_UFO) : 0);
	}
	/* vhost serves the rings: offer only the ring features it knows. */
	if (n->use_vhost) {
		const uint64_t ring = F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_RING_F_EVENT_IDX) |
				      F(VIRTIO_RING_F_INDIRECT_DESC);

		f &= ~(ring & ~n->vhost.features);
	}
	return f;
}

static int check_options(const struct net_options *o, unsigned int pairs, struct kerr *err)
{
	bool has_name = o->tap_name && *o->tap_name;

	if (has_name && o->tap_fd >= 0)
		return kerr_set(err, "net: give tap=NAME or fd=N, not both");
	if (!has_name && o->tap_fd < 0)
		return kerr_set(err, "net: no back end (use --net tap=NAME or --net fd=N)");
	if (pairs > VIRTIO_NET_MAX_PAIRS)
		return kerr_set(err, "net: queues=%u is out of range (1..%d)", pairs,
				VIRTIO_NET_MAX_PAIRS);
	if (o->tap_fd >= 0 && pairs > 1)
		return kerr_set(err,
				"net: fd=%d is one tap queue; queues=%u needs tap=NAME (kestrel "
				"opens one fd per queue pair)",
				o->tap_fd, pairs);
	if (o->mtu && (o->mtu < 68 || o->mtu > 65535))
		return kerr_set(err, "net: mtu=%u is out of range (68..65535)", o->mtu);
	if (o->mac_set && (o->mac[0] & 1))
		return kerr_set(err,
				"net: mac=%02x:%02x:%02x:%02x:%02x:%02x is a multicast address "
				"(the first byte must be even)",
				o->mac[0], o->mac[1], o->mac[2], o->mac[3], o->mac[4], o->mac[5]);
	if (o->mac_set && !(o->mac[0] | o->mac[1] | o->mac[2] | o->mac[3] | o->mac[4] | o->mac[5]))
		return kerr_set(err, "net: mac=00:00:00:00:00:00 is not a usable address");
	return 0;
}

static void net_free(struct net_dev *n)
{
	for (unsigned int i = 0; i < VIRTIO_NET_MAX_PAIRS; i++) {
		struct net_pair *p = &n->pairs[i];

		watch_set(n, &p->tap, 0);
		for (unsigned int j = 0; j < 2; j++)
			own_call_close(n, &p->call[j]);
		free(p->buf);
		free(p->held);
	}
	/* Closing the vhost fds stops the kernel's workers; the transport may be gone already. */
	net_vhost_close(&n->vhost);
	net_tap_close(&n->tap);
	free((char *)n->dev.name);
	pthread_mutex_destroy(&n->cfg_lock);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

/* fds: nfds already-open queue fds (fd=N), or NULL to open tap o->tap_name. */
static int net_create(struct virtio_dev **out, const struct net_options *o, unsigned int pairs,
		      const int *fds, const struct guest_mem *mem, struct event_loop *loop,
		      struct kerr *err)
{
	struct kerr verr = {.msg = ""};
	struct virtio_dev *d;
	struct net_dev *n;
	const char *fd_desc = "";
	char fdbuf[32];

	if (!loop)
		return kerr_set(err, "virtio-net needs an event loop");
	n = calloc(1, sizeof(*n));
	if (!n)
		return kerr_set(err, "net: out of memory");
	pthread_mutex_init(&n->lock, NULL);
	pthread_mutex_init(&n->cfg_lock, NULL);
	n->loop = loop;
	n->max_pairs = pairs;
	n->curr_pairs = 1;
	n->data_pairs = 1;
	n->mtu = (uint16_t)(o->mtu ? o->mtu : NET_DEFAULT_MTU);
	n->status = VIRTIO_NET_S_LINK_UP;
	for (unsigned int i = 0; i < VIRTIO_NET_MAX_PAIRS; i++) {
		struct net_pair *p = &n->pairs[i];

		p->n = n;
		p->index = i;
		p->tap.h = (struct event_handler){-1, on_tap, p};
		for (unsigned int j = 0; j < 2; j++)
			p->call[j].h.fd = -1;
	}
	for (unsigned int i = 0; i < NET_TAP_MAX_QUEUES; i++)
		n->vhost.fds[i] = -1;
	d = &n->dev;
	d->priv = n;

	if (fds) {
		if (net_tap_adopt(&n->tap, fds, pairs, err) < 0)
			goto fail;
		snprintf(fdbuf, sizeof(fdbuf), "fd=%d", fds[0]);
		fd_desc = fdbuf;
	} else if (net_tap_open(&n->tap, o->tap_name, pairs, err) < 0) {
		goto fail;
	}
	for (unsigned int i = 0; i < pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		p->tap.h.fd = n->tap.fds[i];
		p->buf = malloc(NET_BUF_SIZE);
		if (!p->buf) {
			kerr_set(err, "net: out of memory");
			goto fail;
		}
	}
	if (o->mac_set)
		memcpy(n->mac_default, o->mac, 6);
	else
		virtio_net_default_mac(n->mac_default, n->tap.ifname, o->index);
	memcpy(n->mac, n->mac_default, 6);
	/* Only the guest's view is required; the tap's MTU needs CAP_NET_ADMIN. */
	if (o->mtu && net_tap_set_mtu(&n->tap, o->mtu) < 0 && errno != EPERM && errno != EACCES)
		n->stats.rx_errors++;

	if (o->vhost == NET_VHOST_OFF) {
		snprintf(n->backend, sizeof(n->backend), "tap");
	} else if (!n->tap.is_tap) {
		if (o->vhost == NET_VHOST_ON) {
			kerr_set(err,
				 "net: vhost=on needs a tap, and %s is not one (use vhost=off)",
				 fd_desc);
			goto fail;
		}
		snprintf(n->backend, sizeof(n->backend),
			 "tap (vhost-net unavailable: %s is not a tap)", n->tap.ifname);
	} else if (net_vhost_open(&n->vhost, pairs, &verr) < 0) {
		if (o->vhost == NET_VHOST_ON) {
			kerr_set(err,
				 "vhost=on but /dev/vhost-net cannot be opened: %s (modprobe "
				 "vhost_net, or use vhost=off)",
				 verr.msg);
			goto fail;
		}
		snprintf(n->backend, sizeof(n->backend), "tap (vhost-net unavailable: %.200s)",
			 verr.msg);
	} else {
		n->use_vhost = true;
		snprintf(n->backend, sizeof(n->backend), "vhost-net");
	}

	if (asprintf((char **)&d->name, "virtio-net %s", n->tap.ifname) < 0) {
		d->name = NULL;
		kerr_set(err, "net: out of memory");
		goto fail;
	}
	d->device_id = VIRTIO_ID_NET;
	d->ops = &net_ops;
	d->mem = mem;
	d->host_features = offered_features(n, o);
	d->config_len = NET_CONFIG_LEN;
	d->num_queues = (uint16_t)(2 * pairs + 1);
	d->queue_max_size = VIRTIO_NET_QUEUE_SIZE;
	*out = d;
	return 0;
fail:
	net_free(n);
	return -1;
}

int virtio_net_create(struct virtio_dev **out, const struct net_options *o,
		      const struct guest_mem *mem, struct event_loop *loop, struct kerr *err)
{
	unsigned int pairs = o->queues ? o->queues : 1;

	if (check_options(o, pairs, err) < 0)
		return -1;
	return net_create(out, o, pairs, o->tap_fd >= 0 ? &o->tap_fd : NULL, mem, loop, err);
}

int virtio_net_create_fds(struct virtio_dev **out, const struct net_options *o, const int *fds,
			  unsigned int nfds, const struct guest_mem *mem, struct event_loop *loop,
			  struct kerr *err)
{
	struct net_options fo = *o;

	if (nfds == 0 || nfds > VIRTIO_NET_MAX_PAIRS)
		return kerr_set(err, "net: %u queue fds given (1..%d)", nfds, VIRTIO_NET_MAX_PAIRS);
	fo.tap_name = NULL;
	fo.tap_fd = fds[0];
	fo.queues = 1; /* check_options' one-fd rule does not apply here */
	if (check_options(&fo, 1, err) < 0)
		return -1;
	fo.queues = nfds;
	return net_create(out, &fo, nfds, fds, mem, loop, err);
}

void virtio_net_destroy(struct virtio_dev *d)
{
	if (d)
		net_free(to_net(d));
}

const char *virtio_net_backend(const struct virtio_dev *d)
{
	return to_net(d)->backend;
}

const char *virtio_net_ifname(const struct virtio_dev *d)
{
	return to_net(d)->tap.ifname;
}

const struct virtio_net_stats *virtio_net_stats(const struct virtio_dev *d)
{
	return &to_net(d)->stats;
}

void virtio_net_get_info(struct virtio_dev *d, struct virtio_net_info *out)
{
	struct net_dev *n = to_net(d);

	memset(out, 0, sizeof(*out));
	lock(n);
	out->hdr_len = n->hdr_len;
	out->curr_pairs = n->curr_pairs;
	out->guest_offloads = n->guest_offloads;
	out->promisc = n->promisc;
	out->allmulti = n->allmulti;
	out->uc_entries = n->uc_entries;
	out->mc_entries = n->mc_entries;
	out->uc_overflow = n->uc_overflow;
	out->mc_overflow = n->mc_overflow;
	out->vhost_running = n->vhost_running;
	pthread_mutex_lock(&n->cfg_lock);
	memcpy(out->mac, n->mac, 6);
	out->status = n->status;
	pthread_mutex_unlock(&n->cfg_lock);
	unlock(n);
}

void virtio_net_announce(struct virtio_dev *d)
{
	struct net_dev *n = to_net(d);
	bool raise = false;

	pthread_mutex_lock(&n->cfg_lock);
	if (virtio_has_feature(d, VIRTIO_NET_F_GUEST_ANNOUNCE)) {
		n->status |= VIRTIO_NET_S_ANNOUNCE;
		raise = true;
	}
	pthread_mutex_unlock(&n->cfg_lock);
	if (raise && d->transport)
		d->transport->signal_config(d);
}
