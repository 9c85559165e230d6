/* virtio-console named ports: data both ways over unix socket clients, back-pressure, disconnects.
 */
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

Test(virtio_console, named_port_data_both_ways)
{
	static uint8_t in[5000], out[6000], got[6000];
	size_t have = 0;
	uint32_t len;
	uint8_t *buf;
	int fd = open_port1();

	/* client -> guest */
	pattern(in, sizeof(in), 3);
	cr_assert_eq(write(fd, in, sizeof(in)), (ssize_t)sizeof(in));
	for (unsigned int i = 0; i < 8; i++)
		post_rx(4, 1024);
	kick(4);
	for (int tries = 0; have < sizeof(in) && tries < 100; tries++) {
		while (take_used(4, &buf, &len)) {
			cr_assert_leq(have + len, sizeof(in));
			memcpy(got + have, buf, len);
			have += len;
		}
		if (have < sizeof(in))
			pump(10);
	}
	cr_assert_eq(have, sizeof(in));
	cr_assert_eq(memcmp(got, in, sizeof(in)), 0);
	cr_assert_gt(signals[4], 0);

	/* guest -> client, chains of several segments */
	pattern(out, sizeof(out), 9);
	post(5, out, 1000, 2);
	post(5, out + 1000, 3000, 3);
	post(5, out + 4000, 2000, 1);
	kick(5);
	cr_assert_eq(count_used(5), 3);
	have = 0;
	while (have < sizeof(out)) {
		ssize_t n = read(fd, got + have, sizeof(out) - have);

		cr_assert_gt(n, 0);
		have += (size_t)n;
	}
	cr_assert_eq(memcmp(got, out, sizeof(out)), 0);
	cr_assert_eq(stats().tx_bytes, sizeof(out));
	cr_assert_eq(stats().rx_bytes, sizeof(in));
	close(fd);
}

Test(virtio_console, client_not_polled_without_guest_buffers)
{
	uint8_t *buf;
	uint32_t len;
	int fd = open_port1();

	cr_assert_eq(write(fd, "ping", 4), 4);
	/* Data is waiting but the guest has nowhere to put it: nothing may wake us. */
	cr_assert_eq(pump(50), 0, "the device polls a client it cannot read");
	post_rx(4, 64);
	kick(4);
	cr_assert(take_used(4, &buf, &len));
	cr_assert_eq(len, 4);
	cr_assert_eq(memcmp(buf, "ping", 4), 0);
	cr_assert_eq(pump(50), 0);
	close(fd);
}

Test(virtio_console, guest_closed_port_holds_client_data)
{
	uint8_t *buf;
	uint32_t len;
	int fd = open_port1();

	guest_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	cr_assert_eq(write(fd, "held", 4), 4);
	post_rx(4, 64);
	kick(4);
	cr_assert_eq(pump(50), 0);
	cr_assert_not(take_used(4, NULL, NULL));
	guest_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	cr_assert(take_used(4, &buf, &len));
	cr_assert_eq(len, 4);
	cr_assert_eq(memcmp(buf, "held", 4), 0);
	close(fd);
}

Test(virtio_console, full_client_socket_stops_and_resumes_tx)
{
	enum { CHAINS = 48, CHUNK = 16384 }; /* within the queue's 1 MiB of buffers */
	static uint8_t out[CHAINS * CHUNK], got[CHAINS * CHUNK];
	size_t have = 0;
	int fd = open_port1();
	unsigned int done;

	pattern(out, sizeof(out), 11);
	for (unsigned int i = 0; i < CHAINS; i++)
		post(5, out + i * CHUNK, CHUNK, 1 + i % 3);
	kick(5);
	done = count_used(5);
	cr_assert_lt(done, CHAINS, "it all fit into the socket: the test proves nothing");
	cr_assert_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	for (int tries = 0; have < sizeof(out) && tries < 1000; tries++) {
		ssize_t n = read(fd, got + have, sizeof(got) - have);

		if (n > 0)
			have += (size_t)n;
		pump(5);
	}
	cr_assert_eq(have, sizeof(out));
	cr_assert_eq(memcmp(got, out, sizeof(out)), 0);
	cr_assert_eq(done + count_used(5), CHAINS);
	cr_assert_eq(stats().output_discarded, 0);
	close(fd);
}

Test(virtio_console, guest_output_without_client_is_discarded)
{
	start(1);
	handshake(1);
	ready_port(1, "org.kestrel.one");
	post(5, "lost", 4, 1);
	kick(5);
	cr_assert_eq(count_used(5), 1);
	cr_assert_eq(stats().output_discarded, 4);
}

Test(virtio_console, client_disconnect_and_second_client)
{
	char c;
	int fd = open_port1(), fd2;

	/* A second client is closed at once. */
	fd2 = connect_client(paths[0]);
	cr_assert_eq(read(fd2, &c, 1), 0);
	close(fd2);
	cr_assert_eq(stats().clients_rejected, 1);
	expect_no_ctrl();

	close(fd);
	cr_assert_gt(pump(1000), 0);
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
	cr_assert_eq(pump(50), 0, "a closed client is still polled");

	/* Back to listening: the next client is the port's. */
	fd = connect_client(paths[0]);
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	cr_assert_eq(write(fd, "x", 1), 1);
	post_rx(4, 8);
	kick(4);
	cr_assert(take_used(4, NULL, NULL));
	close(fd);
}

Test(virtio_console, client_data_is_delivered_before_its_eof)
{
	uint8_t *buf;
	uint32_t len;
	int fd = open_port1();

	cr_assert_eq(write(fd, "bye", 3), 3);
	close(fd);
	pump(50);
	expect_no_ctrl(); /* the guest has not read "bye" yet */
	cr_assert_eq(pump(50), 0, "busy-waiting on a hung-up client");
	post_rx(4, 64);
	kick(4);
	cr_assert(take_used(4, &buf, &len));
	cr_assert_eq(len, 3);
	cr_assert_eq(memcmp(buf, "bye", 3), 0);
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
}
