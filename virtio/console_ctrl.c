/* virtio-console control queues (§5.3.6.2): messages to and from the driver. */
#include "virtio/console_priv.h"

/* Control messages to the driver */

void console_ctrl_flush(struct console *c)
{
	struct virtqueue *vq = &c->dev.vqs[CTRL_RX_Q];
	struct virtq_chain *ch = &c->ctrl_rx_chain;
	bool pushed = false;

	while (c->ctrl_head && c->active && c->multiport && !c->broken) {
		struct ctrl_msg *m = c->ctrl_head;
		size_t n;
		int r = virtq_pop(vq, ch);

		if (r < 0)
			set_broken(c);
		if (r <= 0)
			break;
		pushed = true;
		if (ch->writable_bytes < CTRL_HDR) {
			/* Useless buffer: give it back empty, keep the message for the next. */
			c->stats.ctrl_dropped++;
			virtq_push(vq, ch->head, 0);
			continue;
		}
		n = virtq_chain_write(ch, 0, m->data, m->len);
		virtq_push(vq, ch->head, (uint32_t)n);
		c->ctrl_head = m->next;
		if (!c->ctrl_head)
			c->ctrl_tail = NULL;
		c->ctrl_count--;
		free(m);
	}
	if (pushed)
		notify(c, CTRL_RX_Q);
}

void console_ctrl_send(struct console *c, uint32_t id, uint16_t event, uint16_t value,
		       const char *extra)
{
	size_t extra_len = extra ? strlen(extra) : 0;
	struct virtio_console_control hdr = {
	    .id = htole32(id), .event = htole16(event), .value = htole16(value)};
	struct ctrl_msg *m;

	/* Only the latest open/closed state matters to the driver. */
	if (event == VIRTIO_CONSOLE_PORT_OPEN) {
		for (m = c->ctrl_head; m; m = m->next) {
			struct virtio_console_control *q = (void *)m->data;

			if (le16toh(q->event) == event && le32toh(q->id) == id) {
				q->value = hdr.value;
				goto flush;
			}
		}
	}
	if (c->ctrl_count >= CTRL_QUEUE_MAX)
		goto drop;
	m = malloc(sizeof(*m) + CTRL_HDR + extra_len);
	if (!m)
		goto drop;
	m->next = NULL;
	m->len = CTRL_HDR + extra_len;
	memcpy(m->data, &hdr, CTRL_HDR);
	if (extra_len)
		memcpy(m->data + CTRL_HDR, extra, extra_len);
	if (c->ctrl_tail)
		c->ctrl_tail->next = m;
	else
		c->ctrl_head = m;
	c->ctrl_tail = m;
	c->ctrl_count++;
flush:
	console_ctrl_flush(c);
	return;
drop:
	c->stats.ctrl_dropped++;
}

void console_ctrl_clear(struct console *c)
{
	while (c->ctrl_head) {
		struct ctrl_msg *m = c->ctrl_head;

		c->ctrl_head = m->next;
		free(m);
	}
	c->ctrl_tail = NULL;
	c->ctrl_count = 0;
}

/* Driver control messages */

static void ctrl_handle(struct console *c, const struct virtq_chain *ch)
{
	struct virtio_console_control msg;
	struct console_port *p;
	uint32_t id;
	uint16_t event, value;

	if (virtq_chain_read(ch, 0, &msg, sizeof(msg)) != sizeof(msg))
		goto bad;
	id = le32toh(msg.id);
	event = le16toh(msg.event);
	value = le16toh(msg.value);

	if (event == VIRTIO_CONSOLE_DEVICE_READY) {
		/* value 0: the driver failed to initialise; a repeat changes nothing. */
		if (!value || c->device_ready)
			return;
		c->device_ready = true;
		for (unsigned int i = 0; i < c->nr_ports; i++)
			console_ctrl_send(c, i, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
		return;
	}
	if (id >= c->nr_ports)
		goto bad;
	p = &c->ports[id];
	switch (event) {
	case VIRTIO_CONSOLE_PORT_READY:
		if (!value || p->ready)
			return;
		p->ready = true;
		if (id == 0) {
			console_ctrl_send(c, 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL);
			console_ctrl_send(c, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
			return;
		}
		console_ctrl_send(c, id, VIRTIO_CONSOLE_PORT_NAME, 0, p->name);
		if (p->client.h.fd >= 0)
			console_ctrl_send(c, id, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
		return;
	case VIRTIO_CONSOLE_PORT_OPEN:
		p->guest_open = value != 0;
		console_port_rx(p);
		return;
	}
bad:
	c->stats.ctrl_malformed++;
}

void console_ctrl_tx_drain(struct console *c)
{
	struct virtqueue *vq = &c->dev.vqs[CTRL_TX_Q];
	struct virtq_chain *ch = &c->ctrl_tx_chain;
	bool pushed = false;
	int r = 0;

	for (;;) {
		virtq_disable_notify(vq);
		while (!c->broken && (r = virtq_pop(vq, ch)) == 1) {
			ctrl_handle(c, ch);
			virtq_push(vq, ch->head, 0);
			pushed = true;
		}
		if (r < 0)
			set_broken(c);
		if (c->broken || !virtq_enable_notify(vq))
			break;
	}
	if (pushed)
		notify(c, CTRL_TX_Q);
}
