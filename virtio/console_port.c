/* virtio-console ports: guest data to and from the terminal and the named ports' sockets. */
#include "virtio/console_priv.h"

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

void console_client_update(struct console_port *p)
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

void console_in_update(struct console *c)
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
		console_ctrl_send(p->c, p->id, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
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

/* Port 0 output, never waiting (see console_out_open): -1 with EAGAIN when the fd has no room. */
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

void console_port_tx_drain(struct console_port *p)
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
					console_client_update(p);
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
void console_rx_deliver(struct console *c)
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
	console_in_update(c);
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
		console_port_tx_drain(p); /* anything the guest queued is now discarded */
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
		console_port_tx_drain(p);
	}
	console_client_update(p);
}

void console_port_rx(struct console_port *p)
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
		console_ctrl_send(c, p->id, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
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
		console_port_tx_drain(p);
		goto out;
	}
	if ((events & (EPOLLOUT | EPOLLHUP)) && p->tx_blocked) {
		p->tx_blocked = false;
		console_port_tx_drain(p);
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

void console_on_input(void *opaque, uint32_t events)
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
	console_in_update(c);
	unlock(c);
}

void console_on_output(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	struct console_port *p = &c->ports[0];

	(void)events;
	lock(c);
	watch_set(c, &c->out, 0);
	if (p->tx_blocked) {
		p->tx_blocked = false;
		console_port_tx_drain(p);
	}
	unlock(c);
}

int console_port_listen(struct console *c, struct console_port *p, struct kerr *err)
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
int console_out_open(struct console *c, int out_fd, int in_fd, struct kerr *err)
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

void console_port_init(struct console *c, struct console_port *p, unsigned int id)
{
	p->c = c;
	p->id = id;
	p->listen.h = (struct event_handler){.fd = -1, .fn = on_listen, .opaque = p};
	p->client.h = (struct event_handler){.fd = -1, .fn = on_client, .opaque = p};
}
