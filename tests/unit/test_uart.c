/* The 8250/16550A UART: what Linux's serial driver probes, transmits and receives. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "devices/uart_8250.h"

enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

/* A fake interrupt controller: records every level change the UART makes. */
struct irq_rec {
	unsigned int irq;
	int level;
	int changes;
	int history[64];
};

static void rec_set(void *opaque, unsigned int irq, int level)
{
	struct irq_rec *r = opaque;

	r->irq = irq;
	r->level = level;
	if (r->changes < 64)
		r->history[r->changes] = level;
	r->changes++;
}

static struct uart_8250 u;
static struct irq_rec rec;
static int pipefd[2];

static void setup(void)
{
	memset(&rec, 0, sizeof(rec));
	rec.level = -1;
	cr_assert_eq(pipe2(pipefd, O_NONBLOCK), 0);
	uart_init(&u, pipefd[1], (struct irq_line){.set = rec_set, .opaque = &rec, .irq = 4});
}

static void teardown(void)
{
	uart_destroy(&u);
	close(pipefd[0]);
	close(pipefd[1]);
}

static uint8_t rd(unsigned int reg)
{
	uint8_t d[4] = {0xaa, 0xbb, 0xcc, 0xdd};

	uart_io(&u, reg, d, 1, false);
	return d[0];
}

static void wr(unsigned int reg, uint8_t v)
{
	uint8_t d = v;

	uart_io(&u, reg, &d, 1, true);
}

/* Bytes written to the output pipe so far. */
static size_t drain(uint8_t *buf, size_t max)
{
	ssize_t n = read(pipefd[0], buf, max);

	return n < 0 ? 0 : (size_t)n;
}

TestSuite(uart, .init = setup, .fini = teardown);

Test(uart, reset_state)
{
	cr_assert_eq(rd(IER), 0);
	cr_assert_eq(rd(IIR_FCR), 0x01, "no interrupt pending, FIFO off");
	cr_assert_eq(rd(LSR) & 0x60, 0x60, "THRE and TEMT set");
	cr_assert_eq(rd(LSR) & 0x01, 0, "no data ready");
	cr_assert_eq(rd(MSR) & 0xb0, 0xb0, "DCD, DSR and CTS asserted outside loopback");
	cr_assert_eq(rec.changes, 0, "irq line touched without cause");
}

Test(uart, scratch_register)
{
	wr(SCR, 0xa5);
	cr_assert_eq(rd(SCR), 0xa5);
	wr(SCR, 0x5a);
	cr_assert_eq(rd(SCR), 0x5a);
}

Test(uart, ier_readback)
{
	/* Linux's autoconfig: IER=0 reads back 0, IER=0x0f reads back 0x0f. */
	wr(IER, 0);
	cr_assert_eq(rd(IER) & 0x0f, 0);
	wr(IER, 0x0f);
	cr_assert_eq(rd(IER) & 0x0f, 0x0f);
	wr(IER, 0xff);
	cr_assert_eq(rd(IER), 0x0f, "bits 4-7 of IER do not exist on a 16550A");
	wr(IER, 0);
}

Test(uart, loopback_msr)
{
	/* Linux: serial_out(MCR, UART_MCR_LOOP | 0x0A); status = MSR & 0xF0; expects 0x90. */
	wr(MCR, 0x1a);
	cr_assert_eq(rd(MSR) & 0xf0, 0x90);
	cr_assert_eq(rd(MCR), 0x1a);
	wr(MCR, 0x10 | 0x01 | 0x04);
	cr_assert_eq(rd(MSR) & 0xf0, 0x60, "DTR->DSR, OUT1->RI");
	wr(MCR, 0x1f);
	cr_assert_eq(rd(MSR) & 0xf0, 0xf0);
	wr(MCR, 0x10);
	cr_assert_eq(rd(MSR) & 0xf0, 0x00);
}

Test(uart, loopback_data_does_not_reach_output)
{
	uint8_t buf[16];

	wr(MCR, 0x10);
	wr(RBR_THR, 'Z');
	cr_assert_eq(drain(buf, sizeof(buf)), 0, "loopback byte leaked to the console");
	cr_assert_eq(rd(LSR) & 0x01, 0x01);
	cr_assert_eq(rd(RBR_THR), 'Z');
	cr_assert_eq(rd(LSR) & 0x01, 0);
}

Test(uart, fifo_detection)
{
	/* Linux: serial_out(FCR, UART_FCR_ENABLE_FIFO); scratch = serial_in(IIR) >> 6 == 3. */
	wr(IIR_FCR, 0x01);
	cr_assert_eq(rd(IIR_FCR) & 0xc0, 0xc0);
	cr_assert_eq(rd(IIR_FCR) >> 6, 3);
	wr(IIR_FCR, 0x00);
	cr_assert_eq(rd(IIR_FCR) & 0xc0, 0x00);
}

Test(uart, dlab_switching)
{
	wr(IER, 0x05);
	wr(LCR, 0x83); /* DLAB, 8N1 */
	cr_assert_eq(rd(LCR), 0x83);
	wr(RBR_THR, 0x01); /* DLL: 115200 baud */
	wr(IER, 0x00);	   /* DLM */
	cr_assert_eq(rd(RBR_THR), 0x01);
	cr_assert_eq(rd(IER), 0x00);
	wr(RBR_THR, 0x0c);
	wr(IER, 0x34);
	cr_assert_eq(rd(RBR_THR), 0x0c, "DLL");
	cr_assert_eq(rd(IER), 0x34, "DLM");

	uint8_t buf[16];
	cr_assert_eq(drain(buf, sizeof(buf)), 0, "a DLL write was transmitted");

	wr(LCR, 0x03);
	cr_assert_eq(rd(IER), 0x05, "IER survives DLAB");
	cr_assert_eq(rd(RBR_THR), 0x00, "RBR is empty, not DLL");
	wr(LCR, 0x83);
	cr_assert_eq(rd(RBR_THR), 0x0c, "DLL kept");
	cr_assert_eq(rd(IER), 0x34, "DLM kept");
	wr(LCR, 0x03);
}

Test(uart, transmit_to_out_fd)
{
	const char *msg = "Linux version 6.1\r\n";
	uint8_t buf[64];

	wr(LCR, 0x03);
	for (const char *p = msg; *p; p++) {
		cr_assert_eq(rd(LSR) & 0x20, 0x20, "THRE not set before byte");
		wr(RBR_THR, (uint8_t)*p);
	}
	size_t n = drain(buf, sizeof(buf));
	cr_assert_eq(n, strlen(msg));
	cr_assert_eq(memcmp(buf, msg, n), 0);
	cr_assert_eq(rd(LSR) & 0x01, 0, "transmit must not loop back outside loopback mode");
}

Test(uart, thre_interrupt)
{
	/* No THRI enabled: writes raise nothing. */
	wr(RBR_THR, 'a');
	cr_assert_eq(rd(IIR_FCR) & 0x0f, 0x01);
	cr_assert_eq(rec.changes, 0);

	/* Enabling THRI with an empty transmitter raises it at once. */
	wr(IER, 0x02);
	cr_assert_eq(rec.level, 1, "THRE interrupt not raised");
	cr_assert_eq(rec.irq, 4);
	cr_assert_eq(rd(IIR_FCR) & 0x0f, 0x02, "IIR does not report THRI");
	/* That read acknowledged it. */
	cr_assert_eq(rec.level, 0, "reading IIR did not lower the line");
	cr_assert_eq(rd(IIR_FCR) & 0x0f, 0x01);

	/* Each transmitted byte raises it again. */
	wr(RBR_THR, 'b');
	cr_assert_eq(rec.level, 1);
	cr_assert_eq(rd(IIR_FCR) & 0x0f, 0x02);
	cr_assert_eq(rec.level, 0);

	/* Disabling THRI lowers a pending interrupt. */
	wr(RBR_THR, 'c');
	cr_assert_eq(rec.level, 1);
	wr(IER, 0x00);
	cr_assert_eq(rec.level, 0);
	cr_assert_eq(rd(IIR_FCR) & 0x0f, 0x01);

	/* Changes are edges only: never the same level twice in a row. */
	for (int i = 1; i < rec.changes && i < 64; i++)
		cr_assert_neq(rec.history[i], rec.history[i - 1], "level %d repeated",
			      rec.history[i]);
}

Test(uart, receive)
{
	const uint8_t in[] = "hello";

	wr(LCR, 0x03);
	cr_assert_eq(rd(LSR) & 0x01, 0);
	uart_receive(&u, in, 5);
	cr_assert_eq(rd(LSR) & 0x01, 0x01, "LSR.DR not set");
	cr_assert_eq(rec.changes, 0, "irq raised with RDI disabled");
	wr(IER, 0x01);
	cr_assert_eq(rec.level, 1, "enabling RDI with data waiting must raise the irq");
	cr_assert_eq(rd(IIR_FCR) & 0x0f, 0x04, "IIR does not report RDI");
	cr_assert_eq(rec.level, 1, "reading IIR must not acknowledge RDI");
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(rec.level, 1, "irq lowered with %d bytes left", 5 - i);
		cr_assert_eq(rd(RBR_THR), in[i], "byte %d", i);
	}
	cr_assert_eq(rd(LSR) & 0x01, 0, "LSR.DR set after all bytes read");
	cr_assert_eq(rec.level, 0, "irq still raised with nothing to read");
	cr_assert_eq(rd(IIR_FCR) & 0x0f, 0x01);
	cr_assert_eq(rd(RBR_THR), 0, "empty RBR");

	/* With RDI already on, input raises the line directly. */
	uart_receive(&u, (const uint8_t *)"x", 1);
	cr_assert_eq(rec.level, 1);
	cr_assert_eq(rd(RBR_THR), 'x');
	cr_assert_eq(rec.level, 0);
	cr_assert_eq(u.rx_dropped, 0);
}

Test(uart, rdi_has_priority_over_thri)
{
	wr(IER, 0x03);
	cr_assert_eq(rec.level, 1);
	uart_receive(&u, (const uint8_t *)"q", 1);
	cr_assert_eq(rd(IIR_FCR) & 0x0f, 0x04);
	cr_assert_eq(rd(RBR_THR), 'q');
	cr_assert_eq(rd(IIR_FCR) & 0x0f, 0x02, "THRI lost behind RDI");
	cr_assert_eq(rd(IIR_FCR) & 0x0f, 0x01);
	cr_assert_eq(rec.level, 0);
}

Test(uart, receive_wraps_and_overflows)
{
	static uint8_t big[UART_RX_BUF + 100];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 1);
	/* Move the ring's head off zero first so the buffer wraps. */
	uart_receive(&u, (const uint8_t *)"abc", 3);
	cr_assert_eq(rd(RBR_THR), 'a');
	cr_assert_eq(rd(RBR_THR), 'b');
	cr_assert_eq(rd(RBR_THR), 'c');

	uart_receive(&u, big, sizeof(big));
	cr_assert_eq(u.rx_dropped, 100);
	uart_receive(&u, big, 10);
	cr_assert_eq(u.rx_dropped, 110);
	for (size_t i = 0; i < UART_RX_BUF; i++)
		cr_assert_eq(rd(RBR_THR), big[i], "byte %zu", i);
	cr_assert_eq(rd(LSR) & 0x01, 0);

	uart_receive(&u, (const uint8_t *)"z", 1);
	cr_assert_eq(u.rx_dropped, 110);
	cr_assert_eq(rd(RBR_THR), 'z');
}

Test(uart, fcr_clears_receiver)
{
	uart_receive(&u, (const uint8_t *)"junk", 4);
	wr(IIR_FCR, 0x07);
	cr_assert_eq(rd(LSR) & 0x01, 0);
	cr_assert_eq(rd(IIR_FCR) & 0xc0, 0xc0);
	uart_receive(&u, (const uint8_t *)"ok", 2);
	cr_assert_eq(rd(RBR_THR), 'o');
	cr_assert_eq(rd(RBR_THR), 'k');
}

Test(uart, wide_reads_and_bad_offsets)
{
	uint8_t d[4] = {0xaa, 0xbb, 0xcc, 0xdd};

	wr(SCR, 0x42);
	uart_io(&u, SCR, d, 4, false);
	cr_assert_eq(d[0], 0x42);
	cr_assert_eq(d[1], 0);
	cr_assert_eq(d[2], 0);
	cr_assert_eq(d[3], 0);

	uint8_t e = 0x77;
	uart_io(&u, 8, &e, 1, true); /* out of range: ignored */
	uart_io(&u, 8, &e, 1, false);
	cr_assert_eq(e, 0x77);
	cr_assert_eq(rd(SCR), 0x42);
}

/* A host reader that stopped reading must not hold the vCPU writing THR forever. */
Test(uart, output_to_a_stalled_reader_is_dropped_not_waited_for, .timeout = 10)
{
	int p[2], fl;
	char fill[4096];

	cr_assert_eq(pipe(p), 0);
	fl = fcntl(p[1], F_GETFL);
	cr_assert_eq(fcntl(p[1], F_SETFL, fl | O_NONBLOCK), 0);
	memset(fill, 'x', sizeof(fill));
	while (write(p[1], fill, sizeof(fill)) > 0)
		;
	/* The descriptor kestrel got is a blocking one, as a shared stdout is. */
	cr_assert_eq(fcntl(p[1], F_SETFL, fl), 0);
	u.out_fd = p[1];
	u.out_wait_ms = 10;
	for (int i = 0; i < 5; i++)
		wr(0, 'a');
	cr_assert_eq(u.tx_dropped, 5);
	/* Once the reader drains, output flows again. */
	cr_assert_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	while (read(p[0], fill, sizeof(fill)) > 0)
		;
	wr(0, 'b');
	cr_assert_eq(u.tx_dropped, 5);
	u.out_fd = pipefd[1];
	close(p[0]);
	close(p[1]);
}
