/*
 * virtio-net device model (VIRTIO 1.2 §5.1): features, config space, the device ops, create
 * and destroy. The data path in kestrel (tap <-> rings on the event loop) is in net_rx.c and
 * net_tx.c, the control queue in net_ctrl.c, handing the rings to vhost-net in
 * net_dev_vhost.c; net_priv.h holds what they share.
 */
#include "virtio/net.h"

#include "virtio/net_priv.h"

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
	if (n->use_vhost && net_dev_vhost_start(n) < 0) {
		n->active = false;
		rc = -1;
		goto out;
	}
	if (net_set_pairs(n, 1) < 0)
		n->stats.rx_errors++;
	for (unsigned int i = 0; i < n->data_pairs; i++) {
		net_tx_run(n, &n->pairs[i]);
		net_rx_run(n, &n->pairs[i]);
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
		net_dev_vhost_stop(n);
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
		net_ctrl_run(n);
	else if (q < 2 * n->data_pairs && q % 2 == 0)
		net_rx_run(n, &n->pairs[q / 2]);
	else if (q < 2 * n->data_pairs)
		net_tx_run(n, &n->pairs[q / 2]);
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

/* Refusing FEATURES_OK is how the spec tells a driver its feature set is inconsistent. */
static bool net_validate_features(struct virtio_dev *d, uint64_t features)
{
	(void)d;
	return virtio_net_check_features(features, NULL) == 0;
}

/* RX queues' kicks (the guest gave buffers) go where tap input is read: a guest waiting
 * for frames should not wait for the network loop's SCHED_BATCH turn either. */
static struct event_loop *net_queue_loop(struct virtio_dev *d, uint16_t q)
{
	struct net_dev *n = to_net(d);

	/* With MQ off, queue 2 is the control queue; it may run there too (under the lock). */
	return q % 2 == 0 && q < 2 * n->max_pairs ? n->rx_loop : NULL;
}

static const struct virtio_dev_ops net_ops = {
    .config_read = net_config_read,
    .validate_features = net_validate_features,
    .config_write = net_config_write,
    .activate = net_activate,
    .reset = net_reset,
    .queue_notify = net_queue_notify,
    .queue_irq_changed = net_queue_irq_changed,
    .queue_loop = net_queue_loop,
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

		tap_watch(n, p, 0, 0);
		for (unsigned int j = 0; j < 2; j++)
			net_own_call_close(n, &p->call[j]);
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
	n->rx_loop = o->rx_loop != loop ? o->rx_loop : NULL;
	n->max_pairs = pairs;
	n->curr_pairs = 1;
	n->data_pairs = 1;
	n->mtu = (uint16_t)(o->mtu ? o->mtu : NET_DEFAULT_MTU);
	n->status = VIRTIO_NET_S_LINK_UP;
	for (unsigned int i = 0; i < VIRTIO_NET_MAX_PAIRS; i++) {
		struct net_pair *p = &n->pairs[i];

		p->n = n;
		p->index = i;
		p->tap.h = (struct event_handler){-1, net_on_tap, p};
		p->tap_in.h = (struct event_handler){-1, net_on_tap, p};
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

		p->tap.h.fd = p->tap_in.h.fd = n->tap.fds[i];
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
