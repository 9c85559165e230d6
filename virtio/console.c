/* virtio-console device ops, create and destroy; see console_priv.h for the pieces. */
#include "virtio/console_priv.h"

/* Device ops */

static void console_config_read(struct virtio_dev *d, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct console *c = to_console(d);

	memset(data, 0, len);
	if (offset < sizeof(c->config)) {
		uint32_t n = sizeof(c->config) - offset;

		memcpy(data, c->config + offset, n < len ? n : len);
	}
}

static void console_config_write(struct virtio_dev *d, uint32_t offset, const uint8_t *data,
				 uint32_t len)
{
	/* cols/rows/max_nr_ports are read-only; emerg_wr is not offered. */
	(void)d;
	(void)offset;
	(void)data;
	(void)len;
}

static void console_queue_notify(struct virtio_dev *d, uint16_t q)
{
	struct console *c = to_console(d);
	unsigned int id = q < 4 ? q / 2 : (q - 2u) / 2;

	lock(c);
	/*
	 * A kick on a queue that does not exist is ignored rather than answered with NEEDS_RESET:
	 * it names no buffer we could complete, and a reset would take hvc0 down with it.
	 */
	if (!c->active || c->broken || q >= d->num_queues || (q >= 2 && !c->multiport))
		goto out;
	if (q == CTRL_RX_Q)
		console_ctrl_flush(c);
	else if (q == CTRL_TX_Q)
		console_ctrl_tx_drain(c);
	else if (q % 2 == 0)
		console_port_rx(&c->ports[id]);
	else
		console_port_tx_drain(&c->ports[id]);
out:
	unlock(c);
}

static int console_activate(struct virtio_dev *d)
{
	struct console *c = to_console(d);

	lock(c);
	c->active = true;
	c->broken = false;
	c->multiport = virtio_has_feature(d, VIRTIO_CONSOLE_F_MULTIPORT);
	/* Without MULTIPORT, port 0 is the console from the start and there is no control. */
	if (!c->multiport)
		c->ports[0].guest_open = true;
	/* Serve whatever the driver queued before DRIVER_OK. */
	if (c->multiport)
		console_ctrl_tx_drain(c);
	for (unsigned int i = 0; i < c->nr_ports; i++) {
		console_port_tx_drain(&c->ports[i]);
		console_port_rx(&c->ports[i]);
	}
	unlock(c);
	return 0;
}

static void console_reset(struct virtio_dev *d)
{
	struct console *c = to_console(d);

	lock(c);
	c->active = false;
	c->broken = false;
	c->multiport = false;
	c->device_ready = false;
	c->irqs = (struct virtio_irqs){0};
	console_ctrl_clear(c);
	watch_set(c, &c->out, 0);
	for (unsigned int i = 0; i < c->nr_ports; i++) {
		struct console_port *p = &c->ports[i];

		p->ready = false;
		p->guest_open = false;
		p->tx_pending = false;
		p->tx_blocked = false;
		if (i)
			console_client_update(p);
	}
	unlock(c);
}

static const struct virtio_dev_ops console_ops = {
    .config_read = console_config_read,
    .config_write = console_config_write,
    .activate = console_activate,
    .reset = console_reset,
    .queue_notify = console_queue_notify,
};

/* Setup and teardown */

static int check_options(const struct console_port_options *ports, unsigned int nr_ports,
			 struct kerr *err)
{
	if (nr_ports > VIRTIO_CONSOLE_MAX_NAMED_PORTS)
		return kerr_set(err, "too many serial ports: %u (at most %d)", nr_ports,
				VIRTIO_CONSOLE_MAX_NAMED_PORTS);
	for (unsigned int i = 0; i < nr_ports; i++) {
		const struct console_port_options *o = &ports[i];
		size_t len = o->name ? strlen(o->name) : 0;

		if (!len || len > VIRTIO_CONSOLE_NAME_MAX)
			return kerr_set(err, "serial port name must be 1..%d bytes",
					VIRTIO_CONSOLE_NAME_MAX);
		if (!o->socket_path || !o->socket_path[0])
			return kerr_set(err, "serial port %s needs socket=PATH", o->name);
		for (unsigned int j = 0; j < i; j++) {
			if (!strcmp(ports[j].name, o->name))
				return kerr_set(err, "serial port name %s is used twice", o->name);
			if (!strcmp(ports[j].socket_path, o->socket_path))
				return kerr_set(err, "serial port socket %s is used twice",
						o->socket_path);
		}
	}
	return 0;
}

int virtio_console_create(struct virtio_dev **out, int console_in_fd, int console_out_fd,
			  const struct console_port_options *ports, unsigned int nr_ports,
			  const struct guest_mem *mem, struct event_loop *loop, struct kerr *err)
{
	struct virtio_console_config cfg = {0};
	struct console *c;
	int rc;

	if (check_options(ports, nr_ports, err) < 0)
		return -1;
	if (!loop && (nr_ports || console_in_fd >= 0))
		return kerr_set(err, "virtio-console needs an event loop");
	c = calloc(1, sizeof(*c));
	if (!c)
		return kerr_set(err, "virtio-console: out of memory");
	rc = pthread_mutex_init(&c->lock, NULL);
	if (rc) {
		free(c);
		return kerr_set(err, "virtio-console: mutex: %s", strerror(rc));
	}
	c->loop = loop;
	c->nr_ports = nr_ports + 1;
	c->in.h = (struct event_handler){.fd = console_in_fd, .fn = console_on_input, .opaque = c};
	c->out.h =
	    (struct event_handler){.fd = console_out_fd, .fn = console_on_output, .opaque = c};
	c->dev.priv = c;
	c->ports = calloc(c->nr_ports, sizeof(*c->ports));
	c->inbuf = malloc(VIRTIO_CONSOLE_INPUT_BUF);
	if (!c->ports || !c->inbuf) {
		kerr_set(err, "virtio-console: out of memory");
		goto fail;
	}
	for (unsigned int i = 0; i < c->nr_ports; i++)
		console_port_init(c, &c->ports[i], i);
	for (unsigned int i = 0; i < c->nr_ports; i++) {
		struct console_port *p = &c->ports[i];

		p->tx_chain = malloc(sizeof(*p->tx_chain));
		if (!p->tx_chain) {
			kerr_set(err, "virtio-console: out of memory");
			goto fail;
		}
	}
	if (console_out_open(c, console_out_fd, console_in_fd, err) < 0)
		goto fail;
	for (unsigned int i = 1; i < c->nr_ports; i++) {
		struct console_port *p = &c->ports[i];

		p->name = strdup(ports[i - 1].name);
		p->socket_path = strdup(ports[i - 1].socket_path);
		if (!p->name || !p->socket_path) {
			kerr_set(err, "virtio-console: out of memory");
			goto fail;
		}
		if (console_port_listen(c, p, err) < 0)
			goto fail;
	}
	console_in_update(c);
	/* An input that epoll refuses (a regular file, /dev/null) is treated as at its end. */
	if (console_in_fd >= 0 && !c->in.registered)
		c->in_eof = true;

	cfg.max_nr_ports = htole32(c->nr_ports);
	memcpy(c->config, &cfg, sizeof(cfg));
	c->dev.name = "virtio-console";
	c->dev.device_id = VIRTIO_ID_CONSOLE;
	c->dev.ops = &console_ops;
	c->dev.mem = mem;
	c->dev.host_features =
	    (1ULL << VIRTIO_CONSOLE_F_MULTIPORT) | (1ULL << VIRTIO_RING_F_EVENT_IDX);
	c->dev.config_len = sizeof(cfg);
	c->dev.num_queues = (uint16_t)(4 + 2 * nr_ports);
	c->dev.queue_max_size = QUEUE_SIZE;
	*out = &c->dev;
	return 0;

fail:
	virtio_console_destroy(&c->dev);
	return -1;
}

static void console_free(struct console *c)
{
	for (unsigned int i = 0; c->ports && i < c->nr_ports; i++) {
		struct console_port *p = &c->ports[i];

		if (p->client.h.fd >= 0) {
			watch_set(c, &p->client, 0);
			close(p->client.h.fd);
		}
		if (p->listen.h.fd >= 0) {
			watch_set(c, &p->listen, 0);
			close(p->listen.h.fd);
			unlink(p->socket_path);
		}
		free(p->name);
		free(p->socket_path);
		free(p->tx_chain);
	}
	watch_set(c, &c->in, 0);
	watch_set(c, &c->out, 0);
	if (c->out_owned)
		close(c->out.h.fd);
	console_ctrl_clear(c);
	free(c->inbuf);
	free(c->ports);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void virtio_console_destroy(struct virtio_dev *d)
{
	if (d)
		console_free(to_console(d));
}

void virtio_console_input(struct virtio_dev *d, const uint8_t *buf, size_t len)
{
	struct console *c = to_console(d);
	size_t room, tail, n;

	lock(c);
	room = VIRTIO_CONSOLE_INPUT_BUF - c->in_len;
	if (len > room) {
		c->stats.input_dropped += len - room;
		len = room;
	}
	while (len) {
		tail = (c->in_head + c->in_len) % VIRTIO_CONSOLE_INPUT_BUF;
		n = VIRTIO_CONSOLE_INPUT_BUF - tail;
		if (n > len)
			n = len;
		memcpy(c->inbuf + tail, buf, n);
		c->in_len += n;
		buf += n;
		len -= n;
	}
	console_rx_deliver(c);
	unlock(c);
}

void virtio_console_get_stats(struct virtio_dev *d, struct virtio_console_stats *out)
{
	struct console *c = to_console(d);

	lock(c);
	*out = c->stats;
	unlock(c);
}
