/* virtio-net transmit: header and frame to the tap, malformed chains, a full tap. */
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

/* ---- TX ---- */

static uint16_t tx_frame(const uint8_t *data, size_t len, uint8_t gso, uint8_t flags)
{
	struct virtio_net_hdr_mrg_rxbuf h = {.hdr = {.flags = flags, .gso_type = gso}};
	struct fx_seg s[2] = {{alloc_buf(HDR12), HDR12, false},
			      {alloc_buf((uint32_t)len), (uint32_t)len, false}};

	memcpy(host(s[0].gpa), &h, sizeof(h));
	memcpy(host(s[1].gpa), data, len);
	return add_chain(1, s, len ? 2 : 1);
}

Test(net, tx_writes_header_and_frame)
{
	uint8_t data[300], got[1000];
	struct vring_used_elem *e;
	uint16_t head;

	start(0);
	fill(data, sizeof(data), 10);
	head = tx_frame(data, sizeof(data), 0, 0);
	dev->ops->queue_notify(dev, 1);
	cr_assert_eq(recv(peer[0], got, sizeof(got), MSG_DONTWAIT), 312);
	cr_assert_arr_eq(got + 12, data, sizeof(data));
	e = take_used(1);
	cr_assert_eq(e->id, head);
	cr_assert_eq(e->len, 0);
	cr_assert_eq(signals[1], 1);
	cr_assert_eq(virtio_net_stats(dev)->tx_frames, 1);
	cr_assert_eq(virtio_net_stats(dev)->tx_bytes, 300);
}

Test(net, tx_malformed_chains_are_dropped_and_completed)
{
	uint8_t data[64], got[256];
	struct fx_seg wr[2] = {{alloc_buf(12), 12, false}, {alloc_buf(64), 64, true}};
	struct fx_seg zero = {alloc_buf(16), 0, false};
	struct fx_seg half = {alloc_buf(16), 6, false};
	const struct virtio_net_stats *st;

	start(F(VIRTIO_NET_F_HOST_TSO4));
	fill(data, sizeof(data), 11);
	add_chain(1, &zero, 1);					   /* empty (zero-length) */
	add_chain(1, &half, 1);					   /* shorter than the header */
	tx_frame(data, 0, 0, 0);				   /* header only: empty frame */
	add_chain(1, wr, 2);					   /* device-writable buffer */
	tx_frame(data, sizeof(data), VIRTIO_NET_HDR_GSO_TCPV4, 0); /* TSO not negotiated */
	tx_frame(data, sizeof(data), 0, 0);			   /* a good one */
	dev->ops->queue_notify(dev, 1);
	cr_assert_eq(used_idx(1), 6);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(take_used(1)->len, 0);
	cr_assert_eq(recv(peer[0], got, sizeof(got), MSG_DONTWAIT), 76, "only the good frame");
	cr_assert_eq(recv(peer[0], got, sizeof(got), MSG_DONTWAIT), -1);
	st = virtio_net_stats(dev);
	cr_assert_eq(st->tx_malformed, 4);
	cr_assert_eq(st->tx_empty, 1);
	cr_assert_eq(st->tx_frames, 1);
	cr_assert_eq(needs_resets, 0);
}

Test(net, tx_readable_after_writable_breaks_the_queue)
{
	struct fx_seg bad[2] = {{alloc_buf(64), 64, true}, {alloc_buf(64), 64, false}};

	start(0);
	add_chain(1, bad, 2);
	dev->ops->queue_notify(dev, 1);
	cr_assert_eq(needs_resets, 1);
	cr_assert_eq(virtio_net_stats(dev)->queue_errors, 1);
	/* The device stays quiet until reset, then works again. */
	dev->ops->queue_notify(dev, 1);
	cr_assert_eq(needs_resets, 1);
	dev->ops->reset(dev);
	cr_assert_eq(bring_up(all_features()), 0);
	cr_assert_eq(needs_resets, 1);
}

Test(net, tx_eagain_stops_and_resumes_on_writable)
{
	uint8_t data[64], got[256];
	unsigned int sent = 0, total = 30;

	small_sndbuf = true;
	start(0);
	for (unsigned int i = 0; i < total; i++) {
		fill(data, sizeof(data), i);
		data[0] = (uint8_t)i;
		tx_frame(data, sizeof(data), 0, 0);
	}
	dev->ops->queue_notify(dev, 1);
	/* The socket takes only a few datagrams before EAGAIN. */
	cr_assert_lt(used_idx(1), total);
	cr_assert_gt(virtio_net_stats(dev)->tx_blocked, 0);
	for (;;) {
		ssize_t r = recv(peer[0], got, sizeof(got), MSG_DONTWAIT);

		if (r < 0)
			break;
		cr_assert_eq(r, 76);
		cr_assert_eq(got[12], (uint8_t)sent, "frames out of order");
		sent++;
	}
	cr_assert_eq(sent, used_idx(1));
	/* Now writable: EPOLLOUT resumes the queue without a kick. */
	while (sent < total) {
		ssize_t r;

		cr_assert_gt(pump(), 0, "stuck at %u", sent);
		while ((r = recv(peer[0], got, sizeof(got), MSG_DONTWAIT)) > 0) {
			cr_assert_eq(got[12], (uint8_t)sent, "frames out of order");
			sent++;
		}
	}
	cr_assert_eq(used_idx(1), total);
	cr_assert_eq(virtio_net_stats(dev)->tx_frames, total);
	/* Done: nothing polls for EPOLLOUT any more. */
	cr_assert_eq(pending_device_events(EPOLLOUT), 0);
}
