/* virtio-console port 0, the terminal: output to the out fd (never blocking the device) and input
 * from the in fd. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fixture_virtio_console.h"

TestSuite(virtio_console, .init = suite_init, .fini = suite_fini);

Test(virtio_console, port0_output_reaches_out_fd)
{
	char buf[64] = {0};
	const char msg[] = "hello, world\n";
	uint32_t len = 99;

	start(0);
	post(1, msg, sizeof(msg) - 1, 3);
	kick(1);
	cr_assert(take_used(1, NULL, &len));
	cr_assert_eq(len, 0);
	cr_assert_eq(signals[1], 1);
	cr_assert_eq(read(out_pipe[0], buf, sizeof(buf)), (ssize_t)sizeof(msg) - 1);
	cr_assert_str_eq(buf, msg);
	cr_assert_eq(stats().tx_bytes, sizeof(msg) - 1);
}

Test(virtio_console, port0_output_resumes_when_out_fd_drains)
{
	static uint8_t data[96 * 1024], got[96 * 1024];
	size_t have = 0;

	/* 96 KiB into a 64 KiB non-blocking pipe: the rest waits for EPOLLOUT. */
	start(0);
	pattern(data, sizeof(data), 5);
	for (unsigned int i = 0; i < 6; i++)
		post(1, data + i * 16384, 16384, 2);
	kick(1);
	cr_assert_lt(count_used(1), 6);
	for (int tries = 0; have < sizeof(data) && tries < 200; tries++) {
		ssize_t n = read(out_pipe[0], got + have, sizeof(got) - have);

		if (n > 0)
			have += (size_t)n;
		pump(10);
	}
	cr_assert_eq(have, sizeof(data));
	cr_assert_eq(memcmp(got, data, sizeof(data)), 0);
	cr_assert_eq(fqs[1].r.used_seen + count_used(1), 6);
}

Test(virtio_console, input_waits_for_open_port_and_buffers)
{
	uint8_t *buf;
	uint32_t len;

	start(0);
	virtio_console_input(dev, (const uint8_t *)"abc", 3);
	post_rx(0, 2);
	kick(0);
	cr_assert_not(take_used(0, NULL, NULL), "delivered before the guest opened the port");
	handshake(0); /* the guest opens port 0: the buffer posted earlier gets "ab" */
	cr_assert(take_used(0, &buf, &len));
	cr_assert_eq(len, 2);
	cr_assert_eq(memcmp(buf, "ab", 2), 0);
	cr_assert_not(take_used(0, NULL, NULL));
	post_rx(0, 16);
	kick(0);
	cr_assert(take_used(0, &buf, &len));
	cr_assert_eq(len, 1);
	cr_assert_eq(buf[0], 'c');

	/* From the input fd too, once a buffer is there. */
	cr_assert_eq(write(in_pipe[1], "xyz", 3), 3);
	cr_assert_gt(pump(1000), 0);
	cr_assert_not(take_used(0, NULL, NULL));
	post_rx(0, 16);
	kick(0);
	cr_assert(take_used(0, &buf, &len));
	cr_assert_eq(len, 3);
	cr_assert_eq(memcmp(buf, "xyz", 3), 0);
	cr_assert_eq(stats().input_dropped, 0);
	cr_assert_eq(stats().rx_bytes, 6);
}

Test(virtio_console, input_beyond_buffer_is_dropped_and_counted)
{
	static uint8_t big[VIRTIO_CONSOLE_INPUT_BUF + 100];
	uint32_t total = 0, len;
	uint8_t *buf;

	start(0);
	pattern(big, sizeof(big), 1);
	virtio_console_input(dev, big, sizeof(big));
	cr_assert_eq(stats().input_dropped, 100);
	handshake(0);
	for (unsigned int i = 0; i < 20; i++)
		post_rx(0, 4096);
	kick(0);
	while (take_used(0, &buf, &len)) {
		cr_assert_eq(memcmp(buf, big + total, len), 0);
		total += len;
	}
	cr_assert_eq(total, VIRTIO_CONSOLE_INPUT_BUF);
}

/*
 * Port 0 output must never block the event loop, even on a blocking stdout whose reader
 * stalls: the kick returns, the rest waits in the device, and once the reader drains every
 * byte arrives in order. The caller's fd keeps its flags (others may share it).
 */
static void stalled_reader(int rd, int wr, size_t total)
{
	static uint8_t data[768 * 1024], got[768 * 1024];
	unsigned int chains = (unsigned int)(total / 16384);
	int flags = fcntl(wr, F_GETFL);
	size_t have = 0;

	cr_assert_leq(total, sizeof(data));
	cr_assert_eq(flags & O_NONBLOCK, 0, "the test needs a blocking fd");
	start_out(0, wr);
	pattern(data, total, 13);
	for (unsigned int i = 0; i < chains; i++)
		post(1, data + i * 16384, 16384, 1 + i % 3);
	kick(1); /* hangs here (and the test times out) if the device writes blocking */
	cr_assert_lt(count_used(1), chains, "it all fit: the test proves nothing");
	cr_assert_eq(fcntl(wr, F_GETFL), flags, "the shared fd's flags were changed");
	cr_assert_eq(pump(50), 0, "polled for output while the reader is stalled");

	cr_assert_eq(fcntl(rd, F_SETFL, fcntl(rd, F_GETFL) | O_NONBLOCK), 0);
	for (int tries = 0; have < total && tries < 2000; tries++) {
		ssize_t n = read(rd, got + have, total - have);

		if (n > 0)
			have += (size_t)n;
		pump(5);
	}
	cr_assert_eq(have, total);
	cr_assert_eq(memcmp(got, data, total), 0, "bytes lost or out of order");
	cr_assert_eq(fqs[1].r.used_seen + count_used(1), chains);
	cr_assert_eq(stats().output_discarded, 0);
	cr_assert_eq(stats().tx_bytes, total);
}

Test(virtio_console, port0_output_to_blocking_pipe_never_blocks, .timeout = 10)
{
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	stalled_reader(p[0], p[1], 96 * 1024);
	virtio_console_destroy(dev);
	dev = NULL;
	close(p[0]);
	close(p[1]);
}

Test(virtio_console, port0_output_to_blocking_socket_never_blocks, .timeout = 10)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	stalled_reader(sv[0], sv[1], 768 * 1024);
	virtio_console_destroy(dev);
	dev = NULL;
	close(sv[0]);
	close(sv[1]);
}
