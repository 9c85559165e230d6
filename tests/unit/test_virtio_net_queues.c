/* virtio-net queue pairs: multiqueue in and out of range, where the control queue goes, reset. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <linux/if_tun.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture_virtio_net.h"
#include "virtio/net_tap.h"
#include "virtio/net_vhost.h"

TestSuite(net, .init = suite_init, .fini = suite_fini);

/* ---- multiqueue ---- */

Test(net, mq_pairs_in_and_out_of_range)
{
	struct net_options o = opts();
	struct virtio_net_info info;
	uint8_t data[40], cfg[2];
	uint16_t k;

	create_raw(2, &o);
	cr_assert_eq(dev->num_queues, 5);
	cr_assert(dev->host_features & F(VIRTIO_NET_F_MQ));
	dev->ops->config_read(dev, 8, cfg, 2);
	cr_assert_eq(cfg[0], 2);
	cr_assert_eq(bring_up(all_features()), 0);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.curr_pairs, 1);

	/* Pair 1 has buffers but is not in use yet: its fd is not read. */
	post_rx(2, 2048, NULL);
	fill(data, sizeof(data), 12);
	send_frame(peer[1], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 2);
	pump();
	cr_assert_eq(used_idx(2), 0);

	k = htole16(0);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2),
		     VIRTIO_NET_ERR);
	k = htole16(3);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2),
		     VIRTIO_NET_ERR);
	k = htole16(2);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 1),
		     VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2),
		     VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.curr_pairs, 2);
	pump();
	cr_assert_eq(used_idx(2), 1, "pair 1 receives once enabled");
	cr_assert_eq(signals[2], 1);
}

Test(net, mq_not_negotiated_moves_the_control_queue)
{
	struct net_options o = opts();
	struct fx_seg s[2];
	uint8_t on = 0;

	create_raw(2, &o);
	/* Without MQ the control queue is queue 2 (§5.1.2), whatever max_virtqueue_pairs is. */
	cr_assert_eq(bring_up(all_features() & ~F(VIRTIO_NET_F_MQ)), 0);
	s[0] = (struct fx_seg){alloc_buf(3), 3, false};
	memcpy(host(s[0].gpa), (uint8_t[3]){VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, on}, 3);
	s[1] = (struct fx_seg){alloc_buf(1), 1, true};
	add_chain(2, s, 2);
	dev->ops->queue_notify(dev, 2);
	cr_assert_eq(used_idx(2), 1);
	cr_assert_eq(*host(s[1].gpa), VIRTIO_NET_OK);
}

/* ---- reset ---- */

Test(net, reset_stops_polling_and_forgets_pending_frames)
{
	static uint8_t data[2500];

	start(0);
	post_rx(0, 1000, NULL);
	fill(data, sizeof(data), 13);
	send_frame(peer[0], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_eq(used_idx(0), 0);
	dev->ops->reset(dev);
	send_frame(peer[0], HDR12, data, 100);
	cr_assert_eq(pending_device_events(~0U), 0);
	/* A fresh driver gets the next frame into fresh buffers, whole. */
	cr_assert_eq(bring_up(all_features()), 0);
	post_rx(0, 4096, NULL);
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_eq(used_idx(0), 1);
	cr_assert_eq(take_used(0)->len, 112);
}

/* The receive loop on its own thread while this one (the network loop's part) activates,
 * kicks, sends and resets the device over and over: the NIC's lock keeps the two apart, so
 * nothing crashes, hangs, or delivers more than was sent (run under ASan in CI). */
Test(net, rx_loop_thread_beside_resets)
{
	struct event_loop rxl;
	struct net_options o = opts();
	uint8_t data[64];
	uint64_t sent = 0;

	cr_assert_eq(event_loop_init(&rxl, NULL), 0);
	o.rx_loop = &rxl;
	create_raw(1, &o);
	cr_assert_eq(event_loop_start(&rxl, NULL), 0);
	fill(data, sizeof(data), 3);
	for (int round = 0; round < 100; round++) {
		cr_assert_eq(bring_up(all_features()), 0);
		for (int i = 0; i < 2; i++)
			post_rx(0, 1526, NULL);
		dev->ops->queue_notify(dev, 0);
		for (int i = 0; i < 2; i++, sent++)
			send_frame(peer[0], HDR12, data, sizeof(data));
		if (round % 2)
			usleep(200); /* sometimes let the thread catch up before the reset */
		dev->ops->reset(dev);
	}
	event_loop_stop(&rxl);
	cr_assert_leq(virtio_net_stats(dev)->rx_frames, sent);
	cr_assert_gt(virtio_net_stats(dev)->rx_frames, 0, "the receive loop never delivered");
	virtio_net_destroy(dev);
	dev = NULL;
	event_loop_destroy(&rxl);
}
