/*
 * virtio-net's private declarations, shared by its pieces: net.c (device ops, create and
 * destroy), net_rx.c, net_tx.c, net_ctrl.c and net_dev_vhost.c. Not for other devices.
 */
#ifndef KESTREL_VIRTIO_NET_PRIV_H
#define KESTREL_VIRTIO_NET_PRIV_H

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
	/* On the device's loop: EPOLLOUT while TX is blocked, and EPOLLIN while RX has buffers
	 * unless the device has an RX loop of its own, where tap_in waits for EPOLLIN. */
	struct event_watch tap;
	struct event_watch tap_in;
	bool rx_want;	 /* the guest has buffers: poll the tap for input */
	bool tx_blocked; /* the tap was full: wait for EPOLLOUT */
	bool eof;	 /* a raw fd's peer went away: never read again */

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
	struct event_loop *rx_loop; /* tap input; NULL: loop */
	struct net_tap tap;
	struct net_vhost vhost;
	bool use_vhost; /* /dev/vhost-net is open: hand the rings over at activation */
	char backend[320];
	unsigned int max_pairs;
	uint16_t mtu;
	uint8_t mac_default[6];

	/* Data path, control queue, activate/reset: the event-loop thread (and the RX loop's, for
	 * tap input), under lock. Lock order: lock, then the transport's (raised after unlock);
	 * cfg_lock is a leaf. */
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

static inline struct net_dev *to_net(const struct virtio_dev *d)
{
	return d->priv;
}

static inline uint16_t rx_q(unsigned int pair)
{
	return (uint16_t)(2 * pair);
}

static inline uint16_t tx_q(unsigned int pair)
{
	return (uint16_t)(2 * pair + 1);
}

static inline void lock(struct net_dev *n)
{
	pthread_mutex_lock(&n->lock);
}

static inline void unlock(struct net_dev *n)
{
	struct virtio_irqs irqs = virtio_irqs_take(&n->irqs);

	pthread_mutex_unlock(&n->lock);
	virtio_irqs_raise(&n->dev, irqs);
}

static inline void notify(struct net_dev *n, uint16_t q)
{
	virtio_irqs_queue(&n->dev, &n->irqs, q);
}

/* The guest broke a queue: stop until it resets us (virtq_pop's contract). */
static inline void set_broken(struct net_dev *n)
{
	if (!n->broken)
		n->stats.queue_errors++;
	n->broken = true;
	n->irqs.needs_reset = true;
}

static inline void watch_set(struct net_dev *n, struct event_watch *w, uint32_t events)
{
	event_loop_watch(n->loop, w, events);
}

/* Sets what the pair's tap is polled for: in (EPOLLIN) and out (EPOLLOUT), on their loops. */
static inline void tap_watch(struct net_dev *n, struct net_pair *p, uint32_t in, uint32_t out)
{
	if (n->rx_loop) {
		event_loop_watch(n->rx_loop, &p->tap_in, in);
		watch_set(n, &p->tap, out);
	} else {
		watch_set(n, &p->tap, in | out);
	}
}

static inline bool pair_served(const struct net_dev *n, const struct net_pair *p)
{
	return n->active && !n->broken && !p->vhost_on && p->index < n->data_pairs;
}

static inline void pair_update(struct net_dev *n, struct net_pair *p)
{
	uint32_t in = 0, out = 0;

	if (pair_served(n, p)) {
		/* A detached tap queue reports EPOLLERR forever: don't watch it at all. */
		if (p->rx_want && !p->eof && p->index < n->curr_pairs)
			in = EPOLLIN;
		if (p->tx_blocked)
			out = EPOLLOUT;
	}
	tap_watch(n, p, in, out);
}

/* net_rx.c: tap -> guest */
void net_rx_run(struct net_dev *n, struct net_pair *p);

/* net_tx.c: guest -> tap, and the tap fd's event handler */
void net_tx_run(struct net_dev *n, struct net_pair *p);
void net_on_tap(void *opaque, uint32_t events);

/* net_ctrl.c: the control queue */
int net_set_pairs(struct net_dev *n, unsigned int k);
void net_ctrl_run(struct net_dev *n);

/* net_dev_vhost.c: handing the rings to vhost-net and back */
int net_dev_vhost_start(struct net_dev *n);
void net_dev_vhost_stop(struct net_dev *n);
void net_own_call_close(struct net_dev *n, struct own_call *oc);
void net_queue_irq_changed(struct virtio_dev *d, uint16_t q);

#endif
