/*
 * A 16550A-compatible UART: enough of the 8250 family for Linux's serial driver to probe it,
 * print the console through it and read keystrokes from it.
 */
#ifndef KESTREL_UART_8250_H
#define KESTREL_UART_8250_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/irq.h"

#define UART_COM1_BASE 0x3f8
#define UART_COM1_IRQ 4
#define UART_NR_REGS 8
#define UART_RX_BUF 4096
/* How long one output byte may wait for a reader that stopped reading before it is dropped. */
#define UART_OUT_WAIT_MS 100

struct uart_8250 {
	pthread_mutex_t lock; /* vCPU threads (register access) vs. the event loop (input) */
	struct irq_line irq;
	int out_fd;
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	bool thre_pending; /* "transmitter empty" interrupt raised and not yet acknowledged */
	int irq_level;
	uint8_t rx[UART_RX_BUF];
	size_t rx_head, rx_len;
	uint64_t rx_dropped;
	int out_wait_ms;     /* UART_OUT_WAIT_MS; tests shorten it */
	uint64_t tx_dropped; /* output bytes the host side had no room for */
};

void uart_init(struct uart_8250 *u, int out_fd, struct irq_line irq);
void uart_destroy(struct uart_8250 *u);
/* io_bus handler for the 8 registers at base. */
void uart_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);
/* Bytes typed by the user; those that do not fit are dropped and counted. */
void uart_receive(struct uart_8250 *u, const uint8_t *buf, size_t len);

#endif
