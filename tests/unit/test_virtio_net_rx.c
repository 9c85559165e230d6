/* virtio-net receive: header layouts, mergeable buffers, running out of buffers, bad frames, queue
 * sizes. */
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

/* ---- RX ---- */

Test(net, rx_header_12_without_mrg_rxbuf)
{
	uint8_t data[100];
	struct vring_used_elem *e;
	struct virtio_net_info info;
	uint64_t gpa;
	uint16_t head;

	start(F(VIRTIO_NET_F_MRG_RXBUF));
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.hdr_len, 12);
	gpa = post_rx(0, 1526, &head);
	memset(host(gpa), 0xee, 1526);
	dev->ops->queue_notify(dev, 0);
	fill(data, sizeof(data), 1);
	send_frame(peer[0], HDR12, data, sizeof(data));
	cr_assert_gt(pump(), 0);
	e = take_used(0);
	cr_assert_not_null(e);
	cr_assert_eq(e->id, head);
	cr_assert_eq(e->len, 112);
	cr_assert_eq(num_buffers_at(gpa), 1, "num_buffers must be 1 without MRG_RXBUF");
	cr_assert_arr_eq(host(gpa + 12), data, sizeof(data));
	cr_assert_eq(*host(gpa + 112), 0xee, "wrote past the frame");
	cr_assert_eq(signals[0], 1);
	cr_assert_eq(virtio_net_stats(dev)->rx_frames, 1);
	cr_assert_eq(virtio_net_stats(dev)->rx_bytes, 100);
}

Test(net, rx_header_10_legacy)
{
	struct net_options o = opts();
	struct virtio_net_info info;
	uint8_t data[60];
	struct vring_used_elem *e;
	uint64_t gpa;

	create_raw(1, &o);
	/* No VERSION_1 and no MRG_RXBUF: the 10-byte header. */
	cr_assert_eq(bring_up(F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_CTRL_VQ)), 0);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.hdr_len, 10);
	gpa = post_rx(0, 1526, NULL);
	memset(host(gpa), 0xee, 1526);
	fill(data, sizeof(data), 2);
	send_frame(peer[0], HDR10, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	e = take_used(0);
	cr_assert_not_null(e);
	cr_assert_eq(e->len, 70);
	cr_assert_arr_eq(host(gpa + 10), data, sizeof(data));
	cr_assert_eq(*host(gpa + 70), 0xee);
}

Test(net, rx_mergeable_frame_spans_buffers)
{
	static uint8_t data[3000];
	uint64_t gpa[3];
	uint16_t head[3];
	struct vring_used_elem *e;

	start(0);
	for (int i = 0; i < 3; i++)
		gpa[i] = post_rx(0, 1500, &head[i]);
	fill(data, sizeof(data), 3);
	send_frame(peer[0], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_eq(used_idx(0), 3);
	for (int i = 0; i < 3; i++) {
		e = take_used(0);
		cr_assert_eq(e->id, head[i]);
		cr_assert_eq(e->len, i < 2 ? 1500 : 12);
	}
	cr_assert_eq(num_buffers_at(gpa[0]), 3);
	cr_assert_arr_eq(host(gpa[0] + 12), data, 1488);
	cr_assert_arr_eq(host(gpa[1]), data + 1488, 1500);
	cr_assert_arr_eq(host(gpa[2]), data + 2988, 12);
	/* One interrupt for the batch. */
	cr_assert_eq(signals[0], 1);
}

Test(net, rx_mergeable_runs_out_mid_frame_and_resumes)
{
	static uint8_t data[2500];
	uint64_t first, more[2];
	struct vring_used_elem *e;

	start(0);
	first = post_rx(0, 1000, NULL);
	fill(data, sizeof(data), 4);
	send_frame(peer[0], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	/* The filled buffer is held, not used: the driver only ever sees whole frames. */
	cr_assert_eq(used_idx(0), 0);
	cr_assert_eq(signals[0], 0);
	/* Waiting for buffers: the tap is not polled, kicks are wanted (avail_event current). */
	send_frame(peer[0], HDR12, data, 10);
	cr_assert_eq(pending_device_events(EPOLLIN), 0);
	cr_assert_eq(avail_event(0), 1);

	more[0] = post_rx(0, 1000, NULL);
	more[1] = post_rx(0, 1000, NULL);
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_geq(used_idx(0), 3);
	e = take_used(0);
	cr_assert_eq(e->len, 1000);
	e = take_used(0);
	cr_assert_eq(e->len, 1000);
	e = take_used(0);
	cr_assert_eq(e->len, 512);
	cr_assert_eq(num_buffers_at(first), 3);
	cr_assert_arr_eq(host(first + 12), data, 988);
	cr_assert_arr_eq(host(more[0]), data + 988, 1000);
	cr_assert_arr_eq(host(more[1]), data + 1988, 512);
	cr_assert_eq(virtio_net_stats(dev)->rx_frames, 1);
}

Test(net, rx_without_buffers_stops_polling_the_tap)
{
	uint8_t data[64];
	struct vring_used_elem *e;

	start(0);
	fill(data, sizeof(data), 5);
	send_frame(peer[0], HDR12, data, sizeof(data));
	/* No receive buffers: nothing polls the readable tap, nothing is read. */
	cr_assert_eq(pending_device_events(~0U), 0);
	cr_assert_eq(pump(), 0);
	/* Kicks are enabled so the driver tells us when it posts (EVENT_IDX: avail_event). */
	cr_assert_eq(avail_event(0), 0);
	cr_assert_eq(used(0)->flags & VRING_USED_F_NO_NOTIFY, 0);

	post_rx(0, 2048, NULL);
	dev->ops->queue_notify(dev, 0);
	e = take_used(0);
	cr_assert_not_null(e, "the waiting frame is delivered on the kick");
	cr_assert_eq(e->len, 12 + 64);
	/* Out of buffers again: the tap fd is no longer polled for input. */
	send_frame(peer[0], HDR12, data, sizeof(data));
	cr_assert_eq(pending_device_events(EPOLLIN), 0);
}

Test(net, rx_frame_too_big_without_mrg_is_dropped)
{
	uint8_t big[200], small[50];
	struct vring_used_elem *e;
	uint64_t gpa;

	start(F(VIRTIO_NET_F_MRG_RXBUF));
	gpa = post_rx(0, 100, NULL);
	fill(big, sizeof(big), 6);
	fill(small, sizeof(small), 7);
	send_frame(peer[0], HDR12, big, sizeof(big));
	send_frame(peer[0], HDR12, small, sizeof(small));
	dev->ops->queue_notify(dev, 0);
	pump();
	e = take_used(0);
	cr_assert_not_null(e);
	cr_assert_eq(e->len, 62, "the buffer went to the frame that fits");
	cr_assert_null(take_used(0));
	cr_assert_arr_eq(host(gpa + 12), small, sizeof(small));
	cr_assert_eq(virtio_net_stats(dev)->rx_too_big, 1);
}

Test(net, rx_short_frame_is_dropped)
{
	uint8_t tiny[5] = {1, 2, 3, 4, 5};
	uint8_t data[20];
	struct vring_used_elem *e;

	start(0);
	post_rx(0, 2048, NULL);
	cr_assert_eq(send(peer[0], tiny, sizeof(tiny), 0), 5);
	fill(data, sizeof(data), 8);
	send_frame(peer[0], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	e = take_used(0);
	cr_assert_not_null(e);
	cr_assert_eq(e->len, 32);
	cr_assert_null(take_used(0));
	cr_assert_eq(virtio_net_stats(dev)->rx_short, 1);
}

Test(net, rx_mergeable_first_buffer_smaller_than_header)
{
	uint8_t data[20];
	struct vring_used_elem *e;

	start(0);
	post_rx(0, 8, NULL);
	post_rx(0, 2048, NULL);
	fill(data, sizeof(data), 9);
	send_frame(peer[0], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	e = take_used(0);
	cr_assert_eq(e->len, 0, "the useless buffer goes back empty");
	e = take_used(0);
	cr_assert_eq(e->len, 32);
	cr_assert_eq(virtio_net_stats(dev)->rx_bad_buffers, 1);
}

/* ---- per-queue state sized from the negotiated queue size ---- */

/* RX queue 0's rings for any size up to VIRTQ_MAX_SIZE, away from the other queues'. */
#define BIG_DESC 0x800000ULL
#define BIG_AVAIL (BIG_DESC + 16 * VIRTQ_MAX_SIZE)
#define BIG_USED (BIG_AVAIL + 0x1000)

/*
 * Brings the device up with RX queue 0 set up at size entries (the transport would cap it at
 * the device maximum; the device struct is written directly here), posts one header-sized
 * buffer and size - 1 one-byte buffers, and sends frames of payload bytes, checking the
 * first fills the whole queue with nothing written out of bounds.
 */
static void rx_many_tiny_buffers(uint16_t size)
{
	struct vring_desc *desc = (struct vring_desc *)host(BIG_DESC);
	struct vring_avail *av = (struct vring_avail *)host(BIG_AVAIL);
	struct vring_used *us = (struct vring_used *)host(BIG_USED);
	static uint8_t data[VIRTQ_MAX_SIZE];
	uint64_t first = alloc_buf(HDR12), f = all_features();
	uint64_t frames = virtio_net_stats(dev)->rx_frames;
	uint64_t no_room = virtio_net_stats(dev)->rx_no_room;
	uint32_t payload = size - 1u;

	cr_assert(f & F(VIRTIO_NET_F_MRG_RXBUF));
	dev->guest_features = f;
	memset(host(RING_BASE), 0, (size_t)dev->num_queues * 0x4000);
	memset(host(BIG_DESC), 0, BIG_USED + 8 * VIRTQ_MAX_SIZE + 8 - BIG_DESC);
	drv_reset();
	for (uint16_t q = 0; q < dev->num_queues; q++) {
		virtq_reset(&dev->vqs[q]);
		if (q == 0)
			cr_assert_eq(virtq_setup(&dev->vqs[q], &gm, size, BIG_DESC, BIG_AVAIL,
						 BIG_USED, f, NULL),
				     0);
		else
			cr_assert_eq(virtq_setup(&dev->vqs[q], &gm, QSIZE, desc_gpa(q),
						 avail_gpa(q), used_gpa(q), f, NULL),
				     0);
	}
	cr_assert_eq(dev->ops->activate(dev), 0);

	for (uint16_t i = 0; i < size; i++) {
		desc[i].addr = i == 0 ? first : alloc_buf(1);
		desc[i].len = i == 0 ? HDR12 : 1;
		desc[i].flags = VRING_DESC_F_WRITE;
		av->ring[i] = i;
	}
	__atomic_store_n(&av->idx, size, __ATOMIC_RELEASE);

	/* Exactly what the queue holds: every buffer used, once, as one frame. */
	fill(data, payload, 7);
	send_frame(peer[0], HDR12, data, payload);
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_eq(__atomic_load_n(&us->idx, __ATOMIC_ACQUIRE), size);
	cr_assert_eq(num_buffers_at(first), size);
	for (uint16_t i = 0; i < size; i++) {
		cr_assert_eq(us->ring[i].id, i);
		cr_assert_eq(us->ring[i].len, i == 0 ? HDR12 : 1);
		if (i)
			cr_assert_eq(*host(desc[i].addr), data[i - 1]);
	}
	cr_assert_eq(virtio_net_stats(dev)->rx_frames, frames + 1);

	/* One byte more than the queue holds: all buffers come back empty, nothing overflows. */
	__atomic_store_n(&av->idx, (uint16_t)(2 * size), __ATOMIC_RELEASE);
	send_frame(peer[0], HDR12, data, payload + 1);
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_eq(__atomic_load_n(&us->idx, __ATOMIC_ACQUIRE), (uint16_t)(2 * size));
	cr_assert_eq(virtio_net_stats(dev)->rx_no_room, no_room + 1);
	cr_assert_eq(virtio_net_stats(dev)->rx_frames, frames + 1);
	cr_assert_eq(needs_resets, 0);
}

static void create_one(void)
{
	struct net_options o = opts();

	create_raw(1, &o);
}

Test(net, rx_mergeable_small_queue_many_tiny_buffers)
{
	create_one();
	rx_many_tiny_buffers(16);
}

Test(net, rx_mergeable_max_size_queue_many_tiny_buffers)
{
	create_one();
	rx_many_tiny_buffers(VIRTIO_NET_QUEUE_SIZE);
}

/* Larger than the device's maximum: what the transport let through before issue 7. */
Test(net, rx_mergeable_oversized_queue_many_tiny_buffers)
{
	create_one();
	rx_many_tiny_buffers(VIRTQ_MAX_SIZE);
}

/* Reset, then a second activation with other sizes: the state follows each new size. */
Test(net, rx_queue_size_follows_each_activation)
{
	create_one();
	rx_many_tiny_buffers(16);
	dev->ops->reset(dev);
	rx_many_tiny_buffers(VIRTQ_MAX_SIZE);
	dev->ops->reset(dev);
	rx_many_tiny_buffers(8);
}

/* With an RX loop (vmm/vm.h says why), tap input is read there and nowhere else; the
 * device's own loop keeps the kicks. A reset leaves the RX loop watching nothing. */
Test(net, rx_on_its_own_loop)
{
	struct event_loop rxl;
	struct net_options o = opts();
	struct vring_used_elem *e;
	uint8_t data[64];
	uint16_t head;

	cr_assert_eq(event_loop_init(&rxl, NULL), 0);
	o.rx_loop = &rxl;
	create_raw(1, &o);
	cr_assert_eq(bring_up(all_features()), 0);
	post_rx(0, 1526, &head);
	dev->ops->queue_notify(dev, 0);
	fill(data, sizeof(data), 9);
	send_frame(peer[0], HDR12, data, sizeof(data));

	cr_assert_eq(pending_device_events(EPOLLIN), 0, "the device's loop polls the tap");
	cr_assert_eq(pump(), 0);
	cr_assert_eq(used_idx(0), 0);
	cr_assert_eq(event_loop_run_once(&rxl, 0), 1);
	e = take_used(0);
	cr_assert_not_null(e);
	cr_assert_eq(e->id, head);
	cr_assert_eq(e->len, 12 + sizeof(data));
	cr_assert_eq(signals[0], 1);

	/* Out of buffers: the RX loop stops polling; a buffer (kick on the device's loop)
	 * brings the waiting frame in. */
	send_frame(peer[0], HDR12, data, sizeof(data));
	cr_assert_eq(event_loop_run_once(&rxl, 0), 0);
	post_rx(0, 1526, &head);
	dev->ops->queue_notify(dev, 0);
	e = take_used(0);
	cr_assert_not_null(e);
	cr_assert_eq(e->id, head);

	post_rx(0, 1526, NULL);
	dev->ops->queue_notify(dev, 0);
	dev->ops->reset(dev);
	send_frame(peer[0], HDR12, data, sizeof(data));
	cr_assert_eq(event_loop_run_once(&rxl, 0), 0, "a reset device still reads the tap");

	virtio_net_destroy(dev);
	dev = NULL;
	event_loop_destroy(&rxl);
}
