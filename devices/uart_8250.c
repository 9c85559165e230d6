#include "devices/uart_8250.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* Register offsets and bits from the 16550A data sheet. */
enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };
#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO_ENABLED 0xc0
#define FCR_ENABLE_FIFO 0x01
#define FCR_CLEAR_RCVR 0x02
#define LCR_DLAB 0x80
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

void uart_init(struct uart_8250 *u, int out_fd, struct irq_line irq)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	u->out_fd = out_fd;
	u->irq = irq;
	u->mcr = MCR_OUT2;
	u->out_wait_ms = UART_OUT_WAIT_MS;
}

void uart_destroy(struct uart_8250 *u)
{
	pthread_mutex_destroy(&u->lock);
}

static uint8_t uart_iir(const struct uart_8250 *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE_FIFO) ? IIR_FIFO_ENABLED : 0;

	if ((u->ier & IER_RDI) && u->rx_len)
		return IIR_RDI | fifo;
	if ((u->ier & IER_THRI) && u->thre_pending)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

/* The line follows "an interrupt is pending", as a real 8250's INTR pin does. */
static void uart_update_irq(struct uart_8250 *u)
{
	int level = !(uart_iir(u) & IIR_NO_INT);

	if (level != u->irq_level) {
		u->irq_level = level;
		irq_line_set(&u->irq, level);
	}
}

static void uart_transmit(struct uart_8250 *u, uint8_t c)
{
	if (u->mcr & MCR_LOOP) {
		if (u->rx_len < UART_RX_BUF) {
			u->rx[(u->rx_head + u->rx_len) % UART_RX_BUF] = c;
			u->rx_len++;
		}
		return;
	}
	/*
	 * A reader that stops reading must not hold this vCPU (and with it kestrel's shutdown)
	 * forever: wait a bounded time for room, then lose the byte, as a serial line would. A
	 * descriptor that polls writable takes one byte without blocking.
	 */
	struct pollfd p = {.fd = u->out_fd, .events = POLLOUT};
	int r;

	do
		r = poll(&p, 1, u->out_wait_ms);
	while (r < 0 && errno == EINTR);
	if (r != 1 || !(p.revents & POLLOUT)) {
		u->tx_dropped++;
		return;
	}
	while (write(u->out_fd, &c, 1) < 0 && errno == EINTR)
		;
}

static uint8_t uart_msr(const struct uart_8250 *u)
{
	uint8_t m = 0;

	if (!(u->mcr & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	/* Loopback wires the modem outputs back to the inputs; Linux's probe checks this. */
	if (u->mcr & MCR_DTR)
		m |= MSR_DSR;
	if (u->mcr & MCR_RTS)
		m |= MSR_CTS;
	if (u->mcr & MCR_OUT1)
		m |= MSR_RI;
	if (u->mcr & MCR_OUT2)
		m |= MSR_DCD;
	return m;
}

static uint8_t uart_read(struct uart_8250 *u, unsigned int reg)
{
	uint8_t v;

	switch (reg) {
	case RBR_THR:
		if (u->lcr & LCR_DLAB)
			return u->dll;
		if (!u->rx_len)
			return 0;
		v = u->rx[u->rx_head];
		u->rx_head = (u->rx_head + 1) % UART_RX_BUF;
		u->rx_len--;
		return v;
	case IER:
		return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case IIR_FCR:
		v = uart_iir(u);
		/* Reading IIR while it reports THRE acknowledges that interrupt. */
		if ((v & 0x0f) == IIR_THRI)
			u->thre_pending = false;
		return v;
	case LCR:
		return u->lcr;
	case MCR:
		return u->mcr;
	case LSR:
		return LSR_THRE | LSR_TEMT | (u->rx_len ? LSR_DR : 0);
	case MSR:
		return uart_msr(u);
	default:
		return u->scr;
	}
}

static void uart_write(struct uart_8250 *u, unsigned int reg, uint8_t v)
{
	switch (reg) {
	case RBR_THR:
		if (u->lcr & LCR_DLAB) {
			u->dll = v;
			return;
		}
		uart_transmit(u, v);
		u->thre_pending = true;
		return;
	case IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
			return;
		}
		/* Enabling THRI with the transmitter empty raises the interrupt at once. */
		if ((v & IER_THRI) && !(u->ier & IER_THRI))
			u->thre_pending = true;
		u->ier = v & 0x0f;
		return;
	case IIR_FCR:
		u->fcr = v & (FCR_ENABLE_FIFO | 0xc0);
		if (v & FCR_CLEAR_RCVR)
			u->rx_len = 0;
		return;
	case LCR:
		u->lcr = v;
		return;
	case MCR:
		u->mcr = v & 0x1f;
		return;
	case SCR:
		u->scr = v;
		return;
	default:
		return; /* LSR and MSR are read-only */
	}
}

void uart_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct uart_8250 *u = opaque;

	if (offset >= UART_NR_REGS)
		return;
	pthread_mutex_lock(&u->lock);
	if (is_write)
		uart_write(u, (unsigned int)offset, data[0]);
	else {
		data[0] = uart_read(u, (unsigned int)offset);
		for (unsigned int i = 1; i < size; i++)
			data[i] = 0;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

void uart_receive(struct uart_8250 *u, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < len; i++) {
		if (u->rx_len == UART_RX_BUF) {
			u->rx_dropped += len - i;
			break;
		}
		u->rx[(u->rx_head + u->rx_len) % UART_RX_BUF] = buf[i];
		u->rx_len++;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}
