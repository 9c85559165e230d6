/*
 * virtio-console (VIRTIO 1.2 §5.3) with MULTIPORT: port 0 is the guest's console (hvc0), ports
 * 1..N are named serial ports (/dev/virtio-ports/NAME in the guest), each backed by a listening
 * AF_UNIX stream socket on the host.
 *
 * Queues: port 0 rx=0 tx=1, control rx=2 tx=3, port N>=1 rx=2N+2 tx=2N+3. Without MULTIPORT
 * negotiated only queues 0 and 1 exist: kicks on the others are ignored and nothing is taken
 * from them.
 *
 * Threads: every entry point (the ops, virtio_console_input, the event handlers) takes the
 * device's mutex, so the transport may call activate/reset/config_read from a vCPU thread
 * while queue work runs on the event loop. Interrupts (signal_queue, needs_reset) are raised
 * after the mutex is dropped, so the transport may hold its own lock around our ops.
 *
 * Behaviour worth knowing:
 * - Host data reaches a port only while the guest has it open (PORT_OPEN(id, 1) from the
 *   driver; Linux discards data that arrives on a closed port). Until then port 0 input is
 *   buffered (64 KiB, beyond that dropped and counted) and a named port's client is simply
 *   not read, so its data waits in the socket (back-pressure, nothing dropped).
 * - A client is read only while the guest has receive buffers posted for its port; otherwise
 *   its fd is not polled for input at all.
 * - One client per named port: a second connection is accepted and closed at once (it sees
 *   EOF). Client EOF or error sends PORT_OPEN(id, 0); the socket keeps listening.
 * - Guest output to a named port without a client is discarded (the chain is completed), so
 *   the guest never blocks. Output the client cannot take yet (EAGAIN) stops that transmit
 *   queue until the socket is writable again; nothing is dropped.
 * - No output write ever waits, on port 0's stdout either (blocking or not, shared or not):
 *   the chain being written is held (the port's bounded buffer: one chain), no further
 *   chain is taken from that transmit queue, and the rest goes out on EPOLLOUT. How stdout
 *   is written without changing its flags is described at console_out_open() (console_port.c).
 * - Device reset keeps the listening sockets and any connected clients (the next driver sees
 *   PORT_OPEN(id, 1) once it readies the port), keeps buffered port 0 input, and drops queued
 *   control messages and half-written output.
 * - VIRTIO_CONSOLE_F_SIZE is not offered: with MULTIPORT, Linux takes the console size only
 *   from RESIZE control messages, not from config space.
 */
#ifndef KESTREL_VIRTIO_CONSOLE_H
#define KESTREL_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "virtio/device.h"
#include "vmm/error.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"

/* At most this many named ports: 4 + 2 * nr_ports queues must fit VIRTIO_MAX_QUEUES. */
#define VIRTIO_CONSOLE_MAX_NAMED_PORTS ((VIRTIO_MAX_QUEUES - 4) / 2)
#define VIRTIO_CONSOLE_NAME_MAX 255
/* Port 0 input kept while the guest has no receive buffers posted. */
#define VIRTIO_CONSOLE_INPUT_BUF (64 * 1024)

struct console_port_options {
	const char *name;	 /* the guest sees it in /sys/class/virtio-ports/vportXpN/name */
	const char *socket_path; /* listening AF_UNIX socket kestrel creates */
};

struct virtio_console_stats {
	uint64_t ctrl_malformed;   /* driver control messages that were short or unknown */
	uint64_t ctrl_dropped;	   /* device control messages dropped: too many queued */
	uint64_t input_dropped;	   /* port 0 input bytes dropped: buffer full */
	uint64_t output_discarded; /* guest output bytes discarded: no client, write error */
	uint64_t clients_rejected; /* connections closed because the port had a client */
	uint64_t rx_bytes;	   /* host -> guest, all ports */
	uint64_t tx_bytes;	   /* guest -> host, all ports */
};

/*
 * Creates the device and, for each named port, its listening socket (a stale socket file at
 * the path is replaced; anything else there is an error). console_in_fd (may be -1) is read
 * for port 0 input when readable; console_out_fd (may be -1: output discarded) receives the
 * guest's console output. Neither is closed by the device. loop may be NULL only without
 * named ports and without console_in_fd. Fails with a one-line message in err.
 */
int virtio_console_create(struct virtio_dev **out, int console_in_fd, int console_out_fd,
			  const struct console_port_options *ports, unsigned int nr_ports,
			  const struct guest_mem *mem, struct event_loop *loop, struct kerr *err);

/* Closes clients and listening sockets (and unlinks them). Call with the loop stopped. */
void virtio_console_destroy(struct virtio_dev *d);

/* Bytes the user typed, for port 0. Any thread; usually the event loop's. */
void virtio_console_input(struct virtio_dev *d, const uint8_t *buf, size_t len);

void virtio_console_get_stats(struct virtio_dev *d, struct virtio_console_stats *out);

#endif
