/* virtio-net control queue (§5.1.6.5): RX mode, MAC tables, announce, queue pairs, offloads. */
#include "virtio/net_priv.h"

int net_set_pairs(struct net_dev *n, unsigned int k)
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
			net_rx_run(n, p);
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
		return net_set_pairs(n, k) < 0 ? VIRTIO_NET_ERR : VIRTIO_NET_OK;
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

void net_ctrl_run(struct net_dev *n)
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
