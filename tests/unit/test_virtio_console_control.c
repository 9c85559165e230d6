/* virtio-console set-up and the multiport control protocol: handshake, bad messages, broken queues,
 * reset, single-port mode. */
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

Test(virtio_console, config_space)
{
	uint8_t cfg[12];
	uint32_t max;

	start(2);
	dev->ops->config_read(dev, 0, cfg, sizeof(cfg));
	memcpy(&max, cfg + 4, 4);
	cr_assert_eq(max, 3);
}

Test(virtio_console, handshake_adds_ports_and_names_them)
{
	start(2);
	handshake(2);
	ready_port(1, "org.kestrel.one");
	ready_port(2, "two");
	expect_no_ctrl();
	cr_assert_gt(signals[2], 0, "no interrupt for control rx");
	cr_assert_eq(stats().ctrl_malformed, 0);
	/* A repeated DEVICE_READY adds nothing. */
	guest_ctrl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_no_ctrl();
}

Test(virtio_console, control_messages_wait_for_buffers_in_order)
{
	start(2);
	guest_ctrl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_no_ctrl();
	post_ctrl_rx(1);
	kick(2);
	expect_ctrl(0, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
	expect_no_ctrl();
	post_ctrl_rx(4);
	kick(2);
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
	expect_ctrl(2, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
	expect_no_ctrl();
}

Test(virtio_console, malformed_control_messages_are_counted)
{
	struct virtio_console_control m = {.id = 0, .event = VIRTIO_CONSOLE_DEVICE_READY};

	start(1);
	post_ctrl_rx(8);
	post(3, &m, 4, 1); /* short */
	kick(3);
	guest_ctrl(0, 99, 1);				 /* unknown event */
	guest_ctrl(77, VIRTIO_CONSOLE_PORT_READY, 1);	 /* no such port */
	guest_ctrl(1, VIRTIO_CONSOLE_PORT_ADD, 1);	 /* device-to-driver only */
	guest_ctrl(0xffff, VIRTIO_CONSOLE_PORT_OPEN, 1); /* no such port */
	cr_assert_eq(fqs[3].r.used_seen + count_used(3), 5, "every chain is completed");
	cr_assert_eq(stats().ctrl_malformed, 5);
	cr_assert_eq(needs_resets, 0);
	expect_no_ctrl();
	/* Still works. */
	guest_ctrl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_ctrl(0, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
}

Test(virtio_console, broken_queue_asks_for_reset)
{
	start(0);
	avail(1)->ring[0] = QS + 3; /* head out of range */
	__atomic_store_n(&avail(1)->idx, 1, __ATOMIC_RELEASE);
	kick(1);
	cr_assert_eq(needs_resets, 1);
	kick(1);
	cr_assert_eq(needs_resets, 1, "a broken device keeps working on its queues");
}

Test(virtio_console, reset_drops_queued_control_and_keeps_client)
{
	int fd;

	start(1);
	fd = connect_client(paths[0]);
	/* No control rx buffers: the PORT_ADDs wait in the device. */
	guest_ctrl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	dev->ops->reset(dev);
	setup_queues();
	cr_assert_eq(dev->ops->activate(dev), 0);
	post_ctrl_rx(4);
	kick(2);
	expect_no_ctrl();

	/* The next driver finds the client still connected. */
	handshake(1);
	guest_ctrl(1, VIRTIO_CONSOLE_PORT_READY, 1);
	cr_assert_eq(expect_ctrl(1, VIRTIO_CONSOLE_PORT_NAME, 0, NULL), strlen("org.kestrel.one"));
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	close(fd);
}

Test(virtio_console, bad_socket_paths_fail_clearly)
{
	struct console_port_options o = {.name = "p", .socket_path = "/nonexistent-kestrel/x.sock"};
	struct kerr err = {{0}};
	struct virtio_dev *d = NULL;
	struct stat st;
	int fd;

	cr_assert_eq(virtio_console_create(&d, -1, -1, &o, 1, &gm, &el, &err), -1);
	cr_assert_not_null(strstr(err.msg, "/nonexistent-kestrel/x.sock"), "%s", err.msg);
	cr_assert_null(strchr(err.msg, '\n'));

	/* A regular file is not ours to replace. */
	fd = open(paths[0], O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	o.socket_path = paths[0];
	cr_assert_eq(virtio_console_create(&d, -1, -1, &o, 1, &gm, &el, &err), -1);
	cr_assert_not_null(strstr(err.msg, "not a socket"), "%s", err.msg);
	cr_assert_eq(stat(paths[0], &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	unlink(paths[0]);

	/* A stale socket file is. */
	{
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int s = socket(AF_UNIX, SOCK_STREAM, 0);

		strcpy(sa.sun_path, paths[0]);
		cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(s);
	}
	cr_assert_eq(virtio_console_create(&d, -1, -1, &o, 1, &gm, &el, &err), 0, "%s", err.msg);
	virtio_console_destroy(d);
	cr_assert_neq(stat(paths[0], &st), 0, "destroy leaves the socket behind");
}

Test(virtio_console, without_multiport_port0_is_open_from_the_start)
{
	uint8_t *buf;
	uint32_t len;

	start(1);
	dev->ops->reset(dev);
	dev->guest_features = (1ULL << VIRTIO_F_VERSION_1);
	setup_queues();
	cr_assert_eq(dev->ops->activate(dev), 0);
	post_rx(0, 16);
	virtio_console_input(dev, (const uint8_t *)"k", 1);
	cr_assert(take_used(0, &buf, &len));
	cr_assert_eq(len, 1);
	cr_assert_eq(buf[0], 'k');
}

/*
 * Without MULTIPORT only port 0's pair exists (§5.3.2): kicks on the control queues or on a
 * named port's queues are ignored, and a client coming and going touches no queue either.
 */
Test(virtio_console, without_multiport_only_port0_queues_exist)
{
	struct virtio_console_control m = {
	    .id = VIRTIO_CONSOLE_BAD_ID, .event = VIRTIO_CONSOLE_DEVICE_READY, .value = 1};
	int fd;

	start(1);
	dev->ops->reset(dev);
	dev->guest_features = (1ULL << VIRTIO_F_VERSION_1);
	setup_queues();
	/* Queued before DRIVER_OK, then kicked after it. */
	post_ctrl_rx(4);
	post(3, &m, sizeof(m), 1);
	cr_assert_eq(dev->ops->activate(dev), 0);
	kick(2);
	kick(3);
	cr_assert_not(take_used(3, NULL, NULL), "control tx served without MULTIPORT");
	cr_assert_not(take_used(2, NULL, NULL), "control rx served without MULTIPORT");

	post(5, "x", 1, 1);
	kick(5);
	post_rx(4, 16);
	kick(4);
	fd = connect_client(paths[0]);
	cr_assert_eq(write(fd, "y", 1), 1);
	close(fd);
	for (int i = 0; i < 5; i++)
		pump(10);
	cr_assert_not(take_used(5, NULL, NULL), "port 1 tx served without MULTIPORT");
	cr_assert_not(take_used(4, NULL, NULL), "port 1 rx served without MULTIPORT");
	cr_assert_eq(stats().ctrl_malformed, 0);
	cr_assert_eq(needs_resets, 0);

	/* Port 0 still works. */
	post(1, "ok", 2, 1);
	kick(1);
	cr_assert(take_used(1, NULL, NULL));
}
