/*
 * virtio-console's private declarations, shared by its pieces: console.c (device ops, create
 * and destroy), console_port.c (ports and their back ends) and console_ctrl.c (the control
 * queues). Not for other devices.
 */
#ifndef KESTREL_VIRTIO_CONSOLE_PRIV_H
#define KESTREL_VIRTIO_CONSOLE_PRIV_H

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
	struct event_watch out; /* our own fd for console_out_fd (see console_out_open), EPOLLOUT */
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

static inline struct console *to_console(struct virtio_dev *d)
{
	return d->priv;
}

static inline uint16_t rx_q(unsigned int id)
{
	return id == 0 ? 0 : (uint16_t)(2 * id + 2);
}

static inline uint16_t tx_q(unsigned int id)
{
	return id == 0 ? 1 : (uint16_t)(2 * id + 3);
}

static inline void lock(struct console *c)
{
	pthread_mutex_lock(&c->lock);
}

static inline void unlock(struct console *c)
{
	struct virtio_irqs irqs = virtio_irqs_take(&c->irqs);

	pthread_mutex_unlock(&c->lock);
	virtio_irqs_raise(&c->dev, irqs);
}

static inline void notify(struct console *c, uint16_t q)
{
	virtio_irqs_queue(&c->dev, &c->irqs, q);
}

/* The guest broke a queue: stop until it resets us (virtq_pop's contract). */
static inline void set_broken(struct console *c)
{
	c->broken = true;
	c->irqs.needs_reset = true;
}

/*
 * Without MULTIPORT only port 0's queue pair exists (§5.3.2): the control queues and the named
 * ports' queues are not the driver's, even if it set them up.
 */
static inline bool port_exists(const struct console *c, unsigned int id)
{
	return id == 0 || c->multiport;
}

static inline void watch_set(struct console *c, struct event_watch *w, uint32_t events)
{
	event_loop_watch(c->loop, w, events);
}

/* console_ctrl.c: control messages both ways */
void console_ctrl_flush(struct console *c);
void console_ctrl_send(struct console *c, uint32_t id, uint16_t event, uint16_t value,
		       const char *extra);
void console_ctrl_clear(struct console *c);
void console_ctrl_tx_drain(struct console *c);

/* console_port.c: the ports' data and their host back ends */
void console_client_update(struct console_port *p);
void console_in_update(struct console *c);
void console_port_tx_drain(struct console_port *p);
void console_rx_deliver(struct console *c);
void console_port_rx(struct console_port *p);
int console_port_listen(struct console *c, struct console_port *p, struct kerr *err);
int console_out_open(struct console *c, int out_fd, int in_fd, struct kerr *err);
void console_port_init(struct console *c, struct console_port *p, unsigned int id);
/* Event handlers for the terminal fds (event-loop thread). */
void console_on_input(void *opaque, uint32_t events);
void console_on_output(void *opaque, uint32_t events);

#endif
