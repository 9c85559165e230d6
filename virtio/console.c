#include "virtio/console.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define QUEUE_SIZE 256
#define CTRL_RX_Q 2
#define CTRL_TX_Q 3
#define CTRL_HDR sizeof(struct virtio_console_control)
/* Device->driver control messages waiting for control rx buffers; PORT_OPEN is coalesced, so
 * only a guest that never posts buffers can hit this. */
#define CTRL_QUEUE_MAX 256
/* Receive chains filled per call, so one busy client cannot monopolise the event loop; the
 * level-triggered EPOLLIN brings us back. */
#define RX_BUDGET 64

struct ctrl_msg {
	struct ctrl_msg *next;
	size_t len;
	uint8_t data[]; /* struct virtio_console_control, then the name for PORT_NAME */
};

/* An fd in the event loop with the events we currently want (none: not registered). */
struct console;

struct console_port {
	struct console *c;
	unsigned int id;
	char *name; /* NULL for port 0 */
	char *socket_path;
	struct event_watch listen;
	struct event_watch client; /* client.h.fd is -1 without a client */
	bool peer_closed;	   /* the client shut down its sending side; drain, then close */

	/* Driver state, forgotten at reset. */
	bool ready;	 /* PORT_READY(id, 1) received */
	bool guest_open; /* the guest has the port open */
	bool tx_pending; /* tx_chain popped and partly written */
	bool tx_blocked; /* waiting for EPOLLOUT to write the rest of tx_chain */
	size_t tx_off;
	struct virtq_chain *tx_chain;
};

struct console {
	struct virtio_dev dev;
	pthread_mutex_t lock;
	struct event_loop *loop;
	unsigned int nr_ports; /* including port 0 */
	struct console_port *ports;
	bool active;
	bool broken;	   /* a queue is broken: no more work until reset */
	bool multiport;	   /* MULTIPORT negotiated (from activation until reset) */
	bool device_ready; /* DEVICE_READY received */

	/* Port 0 host side: input ring and the terminal fds (not ours to close). */
	struct event_watch in;	/* console_in_fd, EPOLLIN while the ring has room */
	struct event_watch out; /* our own fd for console_out_fd (see out_open), EPOLLOUT */
	enum out_mode { OUT_WRITE, OUT_SEND, OUT_POLL } out_mode;
	bool out_owned; /* out.h.fd is ours to close */
	bool in_eof;
	uint8_t *inbuf;
	size_t in_head, in_len;

	struct ctrl_msg *ctrl_head, *ctrl_tail;
	unsigned int ctrl_count;

	uint8_t config[sizeof(struct virtio_console_config)];
	struct virtio_irqs irqs; /* raised once the lock is dropped */

	struct virtq_chain ctrl_tx_chain, ctrl_rx_chain, rx_chain;
	struct iovec iov[VIRTQ_MAX_SEGS];
	struct virtio_console_stats stats;
};

static struct console *to_console(struct virtio_dev *d)
{
	return d->priv;
}

static uint16_t rx_q(unsigned int id)
{
	return id == 0 ? 0 : (uint16_t)(2 * id + 2);
}

static uint16_t tx_q(unsigned int id)
{
	return id == 0 ? 1 : (uint16_t)(2 * id + 3);
}

static void lock(struct console *c)
{
	pthread_mutex_lock(&c->lock);
}

static void unlock(struct console *c)
{
	struct virtio_irqs irqs = virtio_irqs_take(&c->irqs);

	pthread_mutex_unlock(&c->lock);
	virtio_irqs_raise(&c->dev, irqs);
}

static void notify(struct console *c, uint16_t q)
{
	virtio_irqs_queue(&c->dev, &c->irqs, q);
}

/* The guest broke a queue: stop until it resets us (virtq_pop's contract). */
static void set_broken(struct console *c)
{
	c->broken = true;
	c->irqs.needs_reset = true;
}

/*
 * Without MULTIPORT only port 0's queue pair exists (§5.3.2): the control queues and the named
 * ports' queues are not the driver's, even if it set them up.
 */
static bool port_exists(const struct console *c, unsigned int id)
{
	return id == 0 || c->multiport;
}

static void watch_set(struct console *c, struct event_watch *w, uint32_t events)
{
	event_loop_watch(c->loop, w, events);
}

/* Control messages to the driver */

static void ctrl_flush(struct console *c)
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

static void ctrl_send(struct console *c, uint32_t id, uint16_t event, uint16_t value,
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
	ctrl_flush(c);
	return;
drop:
	c->stats.ctrl_dropped++;
}

static void ctrl_clear(struct console *c)
{
	while (c->ctrl_head) {
		struct ctrl_msg *m = c->ctrl_head;

		c->ctrl_head = m->next;
		free(m);
	}
	c->ctrl_tail = NULL;
	c->ctrl_count = 0;
}

/* Port plumbing */

static int port_out_fd(struct console_port *p)
{
	return p->id == 0 ? p->c->out.h.fd : p->client.h.fd;
}

static bool port_can_read(struct console_port *p)
{
	struct console *c = p->c;

	return p->client.h.fd >= 0 && p->guest_open && c->active && !c->broken &&
	       port_exists(c, p->id) && virtq_has_avail(&c->dev.vqs[rx_q(p->id)]);
}

static void client_update(struct console_port *p)
{
	uint32_t ev = 0;

	if (p->client.h.fd >= 0) {
		/* RDHUP tells us of a hang-up even while we are not reading. */
		if (!p->peer_closed)
			ev |= EPOLLRDHUP;
		if (port_can_read(p))
			ev |= EPOLLIN;
		if (p->tx_blocked)
			ev |= EPOLLOUT;
	}
	watch_set(p->c, &p->client, ev);
}

static void in_update(struct console *c)
{
	bool room = c->in_len < VIRTIO_CONSOLE_INPUT_BUF;

	watch_set(c, &c->in, !c->in_eof && room ? EPOLLIN : 0);
}

/* Closes the client (not the listening socket) and tells the driver. */
static void client_close(struct console_port *p)
{
	watch_set(p->c, &p->client, 0);
	if (p->client.h.fd >= 0)
		close(p->client.h.fd);
	p->client.h.fd = -1;
	p->peer_closed = false;
	p->tx_blocked = false;
	if (p->ready)
		ctrl_send(p->c, p->id, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
}

/* A vanished peer must not SIGPIPE the VMM, and a full one must not stop the event loop. */
static ssize_t sock_send(int fd, struct iovec *iov, int cnt)
{
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};

	return sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Shortens iov[0..cnt) to at most max bytes; returns the new count. */
static int iov_cap(struct iovec *iov, int cnt, size_t max)
{
	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len >= max) {
			iov[i].iov_len = max;
			return i + 1;
		}
		max -= iov[i].iov_len;
	}
	return cnt;
}

/* Port 0 output, never waiting (see out_open): -1 with EAGAIN when the fd has no room. */
static ssize_t out_write(struct console *c, struct iovec *iov, int cnt)
{
	struct pollfd pfd = {.fd = c->out.h.fd, .events = POLLOUT};
	int r;

	switch (c->out_mode) {
	case OUT_SEND:
		return sock_send(pfd.fd, iov, cnt);
	case OUT_POLL:
		r = poll(&pfd, 1, 0);
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = EAGAIN;
			return -1;
		}
		/* A pipe that polls writable takes PIPE_BUF bytes without waiting. */
		cnt = iov_cap(iov, cnt, PIPE_BUF);
		break;
	case OUT_WRITE:
		break;
	}
	return writev(pfd.fd, iov, cnt);
}

/*
 * Writes the rest of the pending tx chain: 1 when done (written or discarded), 0 when the fd
 * is full.
 */
static int port_tx_write(struct console_port *p)
{
	struct console *c = p->c;
	struct virtq_chain *ch = p->tx_chain;

	while (p->tx_off < ch->readable_bytes) {
		size_t off = p->tx_off;
		int cnt = 0, fd = port_out_fd(p);
		ssize_t n;

		if (fd < 0)
			break;
		for (unsigned int i = 0; i < ch->nr_readable; i++) {
			struct virtq_seg *s = &ch->segs[i];

			if (off >= s->len) {
				off -= s->len;
				continue;
			}
			c->iov[cnt].iov_base = (uint8_t *)s->addr + off;
			c->iov[cnt].iov_len = s->len - off;
			cnt++;
			off = 0;
		}
		n = p->id == 0 ? out_write(c, c->iov, cnt) : sock_send(fd, c->iov, cnt);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			if (p->id != 0)
				client_close(p);
			break;
		}
		p->tx_off += (size_t)n;
		c->stats.tx_bytes += (uint64_t)n;
	}
	c->stats.output_discarded += ch->readable_bytes - p->tx_off;
	return 1;
}

static void port_tx_drain(struct console_port *p)
{
	struct console *c = p->c;
	uint16_t q = tx_q(p->id);
	struct virtqueue *vq = &c->dev.vqs[q];
	struct event_watch *w;
	bool pushed = false;
	int r = 0;

	if (!c->active || c->broken || p->tx_blocked || !port_exists(c, p->id))
		return;
	for (;;) {
		virtq_disable_notify(vq);
		for (;;) {
			if (!p->tx_pending) {
				r = virtq_pop(vq, p->tx_chain);
				if (r <= 0)
					break;
				p->tx_pending = true;
				p->tx_off = 0;
			}
			if (port_tx_write(p) == 0) {
				/* Keep the chain; the rest goes out on EPOLLOUT. */
				p->tx_blocked = true;
				if (p->id == 0)
					watch_set(c, &c->out, EPOLLOUT);
				else
					client_update(p);
				w = p->id == 0 ? &c->out : &p->client;
				if (w->events & EPOLLOUT)
					goto out;
				/* Cannot wait for the fd: drop the rest. */
				p->tx_blocked = false;
				c->stats.output_discarded +=
				    p->tx_chain->readable_bytes - p->tx_off;
			}
			virtq_push(vq, p->tx_chain->head, 0);
			p->tx_pending = false;
			pushed = true;
		}
		if (r < 0) {
			set_broken(c);
			break;
		}
		if (!virtq_enable_notify(vq))
			break;
	}
out:
	if (pushed)
		notify(c, q);
}

/* Moves buffered port 0 input into the guest's receive buffers. */
static void console_rx_deliver(struct console *c)
{
	struct console_port *p = &c->ports[0];
	struct virtqueue *vq = &c->dev.vqs[0];
	struct virtq_chain *ch = &c->rx_chain;
	bool pushed = false;

	while (c->in_len && p->guest_open && c->active && !c->broken) {
		size_t done = 0;
		int r = virtq_pop(vq, ch);

		if (r < 0)
			set_broken(c);
		if (r <= 0)
			break;
		while (done < ch->writable_bytes && c->in_len) {
			size_t chunk = VIRTIO_CONSOLE_INPUT_BUF - c->in_head, n;

			if (chunk > c->in_len)
				chunk = c->in_len;
			n = virtq_chain_write(ch, done, c->inbuf + c->in_head, chunk);
			if (!n)
				break;
			done += n;
			c->in_head = (c->in_head + n) % VIRTIO_CONSOLE_INPUT_BUF;
			c->in_len -= n;
		}
		virtq_push(vq, ch->head, (uint32_t)done);
		c->stats.rx_bytes += done;
		pushed = true;
	}
	if (pushed)
		notify(c, 0);
	in_update(c);
}

static bool client_unread(struct console_port *p)
{
	int n = 0;

	/* On error, assume data: the next read finds out. */
	if (ioctl(p->client.h.fd, SIOCINQ, &n) < 0)
		return true;
	return n > 0;
}

/* Reads the client straight into the guest's receive buffers. */
static void port_rx_deliver(struct console_port *p)
{
	struct console *c = p->c;
	uint16_t q = rx_q(p->id);
	struct virtqueue *vq = &c->dev.vqs[q];
	struct virtq_chain *ch = &c->rx_chain;
	bool pushed = false;

	for (unsigned int budget = RX_BUDGET; budget; budget--) {
		int cnt = 0, r;
		ssize_t n;

		if (p->client.h.fd < 0 || !p->guest_open || !c->active || c->broken ||
		    !port_exists(c, p->id))
			break;
		r = virtq_pop(vq, ch);
		if (r < 0)
			set_broken(c);
		if (r <= 0)
			break;
		for (unsigned int i = ch->nr_readable; i < ch->nr_segs; i++) {
			c->iov[cnt].iov_base = ch->segs[i].addr;
			c->iov[cnt].iov_len = ch->segs[i].len;
			cnt++;
		}
		if (!cnt) {
			virtq_push(vq, ch->head, 0);
			pushed = true;
			continue;
		}
		n = readv(p->client.h.fd, c->iov, cnt);
		if (n > 0) {
			virtq_push(vq, ch->head, (uint32_t)n);
			c->stats.rx_bytes += (uint64_t)n;
			pushed = true;
			continue;
		}
		virtq_unpop(vq);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* EOF (after the data the client sent) or a socket error. */
		client_close(p);
		port_tx_drain(p); /* anything the guest queued is now discarded */
		break;
	}
	if (pushed)
		notify(c, q);
	/*
	 * The client left: close once nothing it sent is left to read, or at once if the guest
	 * has the port closed (nobody would read it).
	 */
	if (p->client.h.fd >= 0 && p->peer_closed && (!p->guest_open || !client_unread(p))) {
		client_close(p);
		port_tx_drain(p);
	}
	client_update(p);
}

static void port_rx(struct console_port *p)
{
	if (p->id == 0)
		console_rx_deliver(p->c);
	else
		port_rx_deliver(p);
}

/* Event handlers (event-loop thread) */

static void on_listen(void *opaque, uint32_t events)
{
	struct console_port *p = opaque;
	struct console *c = p->c;
	int fd;

	(void)events;
	lock(c);
	fd = accept4(p->listen.h.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		goto out;
	if (p->client.h.fd >= 0) {
		/* One client at a time: the newcomer sees EOF at once. */
		close(fd);
		c->stats.clients_rejected++;
		goto out;
	}
	p->client.h.fd = fd;
	p->peer_closed = false;
	if (p->ready)
		ctrl_send(c, p->id, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	port_rx_deliver(p);
out:
	unlock(c);
}

static void on_client(void *opaque, uint32_t events)
{
	struct console_port *p = opaque;
	struct console *c = p->c;

	lock(c);
	if (p->client.h.fd < 0)
		goto out;
	if (events & EPOLLERR) {
		client_close(p);
		port_tx_drain(p);
		goto out;
	}
	if ((events & (EPOLLOUT | EPOLLHUP)) && p->tx_blocked) {
		p->tx_blocked = false;
		port_tx_drain(p);
		if (p->client.h.fd < 0)
			goto out;
	}
	/* Stop asking for RDHUP (it stays set); reads drain the data, then see EOF. */
	if (events & (EPOLLRDHUP | EPOLLHUP))
		p->peer_closed = true;
	port_rx_deliver(p);
out:
	unlock(c);
}

static void on_console_in(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	size_t tail, room;
	ssize_t n;

	(void)events;
	lock(c);
	tail = (c->in_head + c->in_len) % VIRTIO_CONSOLE_INPUT_BUF;
	room = VIRTIO_CONSOLE_INPUT_BUF - c->in_len;
	if (room > VIRTIO_CONSOLE_INPUT_BUF - tail)
		room = VIRTIO_CONSOLE_INPUT_BUF - tail;
	if (!room)
		goto out;
	n = read(c->in.h.fd, c->inbuf + tail, room);
	if (n > 0)
		c->in_len += (size_t)n;
	else if (n == 0 || (errno != EINTR && errno != EAGAIN))
		c->in_eof = true; /* the guest keeps running without input */
	console_rx_deliver(c);
out:
	in_update(c);
	unlock(c);
}

static void on_console_out(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	struct console_port *p = &c->ports[0];

	(void)events;
	lock(c);
	watch_set(c, &c->out, 0);
	if (p->tx_blocked) {
		p->tx_blocked = false;
		port_tx_drain(p);
	}
	unlock(c);
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
			ctrl_send(c, i, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
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
			ctrl_send(c, 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL);
			ctrl_send(c, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
			return;
		}
		ctrl_send(c, id, VIRTIO_CONSOLE_PORT_NAME, 0, p->name);
		if (p->client.h.fd >= 0)
			ctrl_send(c, id, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
		return;
	case VIRTIO_CONSOLE_PORT_OPEN:
		p->guest_open = value != 0;
		port_rx(p);
		return;
	}
bad:
	c->stats.ctrl_malformed++;
}

static void ctrl_tx_drain(struct console *c)
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
		ctrl_flush(c);
	else if (q == CTRL_TX_Q)
		ctrl_tx_drain(c);
	else if (q % 2 == 0)
		port_rx(&c->ports[id]);
	else
		port_tx_drain(&c->ports[id]);
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
		ctrl_tx_drain(c);
	for (unsigned int i = 0; i < c->nr_ports; i++) {
		port_tx_drain(&c->ports[i]);
		port_rx(&c->ports[i]);
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
	ctrl_clear(c);
	watch_set(c, &c->out, 0);
	for (unsigned int i = 0; i < c->nr_ports; i++) {
		struct console_port *p = &c->ports[i];

		p->ready = false;
		p->guest_open = false;
		p->tx_pending = false;
		p->tx_blocked = false;
		if (i)
			client_update(p);
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

static int port_listen(struct console *c, struct console_port *p, struct kerr *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (strlen(p->socket_path) >= sizeof(sa.sun_path))
		return kerr_set(err, "serial port %s: socket path %s is longer than %zu bytes",
				p->name, p->socket_path, sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, p->socket_path);
	/* A socket left behind by an earlier run is replaced; anything else is the user's. */
	if (lstat(p->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return kerr_set(err,
					"serial port %s: %s exists and is not a socket; remove it "
					"or choose another path",
					p->name, p->socket_path);
		if (unlink(p->socket_path) < 0)
			return kerr_set(err, "serial port %s: cannot remove stale socket %s: %s",
					p->name, p->socket_path, strerror(errno));
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kerr_set(err, "serial port %s: socket: %s", p->name, strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		kerr_set(err, "serial port %s: cannot create socket %s: %s", p->name,
			 p->socket_path, strerror(errno));
		goto fail_close;
	}
	if (listen(fd, 4) < 0) {
		kerr_set(err, "serial port %s: listen on %s: %s", p->name, p->socket_path,
			 strerror(errno));
		goto fail_unlink;
	}
	p->listen.h.fd = fd;
	if (event_loop_add(c->loop, &p->listen.h, EPOLLIN, err) < 0) {
		p->listen.h.fd = -1;
		goto fail_unlink;
	}
	p->listen.registered = true;
	p->listen.events = EPOLLIN;
	return 0;

fail_unlink:
	unlink(p->socket_path);
fail_close:
	close(fd);
	return -1;
}

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

/*
 * Port 0 output goes to the VMM's stdout, whose open file description is shared with the
 * shell and whoever else holds it: O_NONBLOCK set there would make their writes fail with
 * EAGAIN, so its flags are never touched. Instead, by what the fd is:
 * - a socket: send() with MSG_DONTWAIT, per call;
 * - a pipe or a terminal: a second open of the same pipe or terminal through /proc/self/fd
 *   gives a description of our own, opened non-blocking;
 * - if that fails: poll for POLLOUT first and write at most PIPE_BUF bytes, which a pipe
 *   with room takes at once (another writer racing us could still fill it; rare);
 * - anything else (a regular file, /dev/null) never waits for a reader: plain writes.
 * A pty master is not reopened (that would open /dev/ptmx, a new pty). epoll keys on the fd
 * number, so output always gets a number other than console_in_fd's.
 */
static int out_open(struct console *c, int out_fd, int in_fd, struct kerr *err)
{
	char path[64];
	struct stat st;
	int ptn, fd;

	c->out_mode = OUT_WRITE;
	if (out_fd < 0)
		return 0;
	if (fstat(out_fd, &st) < 0)
		return kerr_set(err, "virtio-console: fstat of the output fd: %s", strerror(errno));
	if (S_ISSOCK(st.st_mode)) {
		c->out_mode = OUT_SEND;
	} else if (S_ISFIFO(st.st_mode) || (isatty(out_fd) && ioctl(out_fd, TIOCGPTN, &ptn) < 0)) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", out_fd);
		fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0) {
			c->out.h.fd = fd;
			c->out_owned = true;
			return 0;
		}
		c->out_mode = OUT_POLL;
	}
	if (out_fd == in_fd) {
		c->out.h.fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 0);
		if (c->out.h.fd < 0)
			return kerr_set(err, "virtio-console: dup: %s", strerror(errno));
		c->out_owned = true;
	}
	return 0;
}

static void port_init(struct console *c, struct console_port *p, unsigned int id)
{
	p->c = c;
	p->id = id;
	p->listen.h = (struct event_handler){.fd = -1, .fn = on_listen, .opaque = p};
	p->client.h = (struct event_handler){.fd = -1, .fn = on_client, .opaque = p};
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
	c->in.h = (struct event_handler){.fd = console_in_fd, .fn = on_console_in, .opaque = c};
	c->out.h = (struct event_handler){.fd = console_out_fd, .fn = on_console_out, .opaque = c};
	c->dev.priv = c;
	c->ports = calloc(c->nr_ports, sizeof(*c->ports));
	c->inbuf = malloc(VIRTIO_CONSOLE_INPUT_BUF);
	if (!c->ports || !c->inbuf) {
		kerr_set(err, "virtio-console: out of memory");
		goto fail;
	}
	for (unsigned int i = 0; i < c->nr_ports; i++)
		port_init(c, &c->ports[i], i);
	for (unsigned int i = 0; i < c->nr_ports; i++) {
		struct console_port *p = &c->ports[i];

		p->tx_chain = malloc(sizeof(*p->tx_chain));
		if (!p->tx_chain) {
			kerr_set(err, "virtio-console: out of memory");
			goto fail;
		}
	}
	if (out_open(c, console_out_fd, console_in_fd, err) < 0)
		goto fail;
	for (unsigned int i = 1; i < c->nr_ports; i++) {
		struct console_port *p = &c->ports[i];

		p->name = strdup(ports[i - 1].name);
		p->socket_path = strdup(ports[i - 1].socket_path);
		if (!p->name || !p->socket_path) {
			kerr_set(err, "virtio-console: out of memory");
			goto fail;
		}
		if (port_listen(c, p, err) < 0)
			goto fail;
	}
	in_update(c);
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
	ctrl_clear(c);
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
