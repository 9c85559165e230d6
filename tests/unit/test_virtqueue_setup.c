/* Copy helpers, queue setup rules, reset and the lifetime counters. */
#include <criterion/criterion.h>
#include <linux/virtio_config.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fixture_virtqueue.h"

TestSuite(virtqueue, .init = mem_init, .fini = mem_fini);

/* Copy helpers */

Test(virtqueue, copy_helpers)
{
	uint8_t out[32], in[16];
	static const uint8_t msg[] = "0123456789abcdef"; /* 16 bytes + NUL */

	memcpy(host(BUF_GPA), "abc", 3);
	memcpy(host(BUF_GPA + 0x100), "defgh", 5);
	memcpy(host(BUF_GPA + 0x200), "ijklmnop", 8);
	memset(host(BUF_GPA + 0x300), '.', 4);
	memset(host(BUF_GPA + 0x400), '.', 4);
	set_desc(0, BUF_GPA, 3, VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA + 0x100, 5, VRING_DESC_F_NEXT, 2);
	set_desc(2, BUF_GPA + 0x200, 8, VRING_DESC_F_NEXT, 3);
	set_desc(3, BUF_GPA + 0x300, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 4);
	set_desc(4, BUF_GPA + 0x400, 4, VRING_DESC_F_WRITE, 0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);

	memset(out, 0, sizeof(out));
	cr_assert_eq(virtq_chain_read(&chain, 2, out, 10), 10);
	cr_assert_arr_eq(out, "cdefghijkl", 10);
	cr_assert_eq(out[10], 0, "no byte past len");

	memset(out, 0, sizeof(out));
	cr_assert_eq(virtq_chain_read(&chain, 0, out, sizeof(out)), 16, "bounded by the chain");
	cr_assert_arr_eq(out, "abcdefghijklmnop", 16);
	cr_assert_eq(out[16], 0, "writable bytes are not read");

	cr_assert_eq(virtq_chain_read(&chain, 8, out, 100), 8);
	cr_assert_arr_eq(out, "ijklmnop", 8);
	cr_assert_eq(virtq_chain_read(&chain, 16, out, 4), 0);
	cr_assert_eq(virtq_chain_read(&chain, 1000, out, 4), 0);

	cr_assert_eq(virtq_chain_write(&chain, 3, msg, 10), 5, "bounded by the chain");
	cr_assert_arr_eq(host(BUF_GPA + 0x300), "...0", 4);
	cr_assert_arr_eq(host(BUF_GPA + 0x400), "1234", 4);
	cr_assert_arr_eq(host(BUF_GPA + 0x404), "\0\0\0\0", 4, "nothing past the buffer");
	cr_assert_arr_eq(host(BUF_GPA + 0x200), "ijklmnop", 8, "readable side untouched");

	cr_assert_eq(virtq_chain_write(&chain, 1, "XY", 2), 2);
	cr_assert_arr_eq(host(BUF_GPA + 0x300), ".XY0", 4);
	cr_assert_eq(virtq_chain_write(&chain, 8, msg, 1), 0);

	memcpy(in, msg, 16);
	cr_assert_eq(virtq_chain_write(&chain, 0, in, 8), 8);
	cr_assert_arr_eq(host(BUF_GPA + 0x300), "0123", 4);
	cr_assert_arr_eq(host(BUF_GPA + 0x400), "4567", 4);
}

/* Setup and reset */

Test(virtqueue, setup_sizes)
{
	static const unsigned int bad[] = {0, 3, 6, 1000, 2048, 32768, 65536};
	static const unsigned int good[] = {1, 2, 256, 1024};

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		virtq_reset(&vq);
		cr_assert_eq(virtq_setup(&vq, &gm, bad[i], DESC_GPA, AVAIL_GPA, USED_GPA, 0, NULL),
			     -1, "size %u", bad[i]);
		cr_assert_not(vq.ready);
		cr_assert_eq(vq.errors[VIRTQ_ERR_SETUP], 1);
	}
	for (unsigned int i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		virtq_reset(&vq);
		cr_assert_eq(virtq_setup(&vq, &gm, good[i], DESC_GPA, AVAIL_GPA, USED_GPA, 0, NULL),
			     0, "size %u", good[i]);
		cr_assert(vq.ready);
		cr_assert_eq(vq.size, good[i]);
	}
}

static int try_setup(unsigned int size, uint64_t d, uint64_t a, uint64_t u)
{
	struct kerr err = {0};
	int r;

	virtq_reset(&vq);
	r = virtq_setup(&vq, &gm, size, d, a, u, 0, &err);
	cr_assert_eq(r == 0, vq.ready);
	if (r)
		cr_assert_neq(err.msg[0], 0, "a message for the log");
	return r;
}

Test(virtqueue, setup_rings_in_ram)
{
	const uint64_t n = 256, end = RAM_SIZE;

	/* Each ring ending exactly at the end of RAM, trailing event field included. */
	cr_assert_eq(try_setup(n, end - 16 * n, AVAIL_GPA, USED_GPA), 0);
	cr_assert_eq(try_setup(n, DESC_GPA, end - (6 + 2 * n), USED_GPA), 0);
	cr_assert_eq(try_setup(n, DESC_GPA, AVAIL_GPA, end - (8 + 8 * n)), 0);

	/* One element or the event field past the end. */
	cr_assert_eq(try_setup(n, end - 16 * n + 16, AVAIL_GPA, USED_GPA), -1);
	cr_assert_eq(try_setup(n, DESC_GPA, end - (4 + 2 * n), USED_GPA), -1, "used_event");
	cr_assert_eq(try_setup(n, DESC_GPA, AVAIL_GPA, end - (4 + 8 * n)), -1, "avail_event");

	/* Wholly outside, and wrapping 2^64. */
	cr_assert_eq(try_setup(n, end, AVAIL_GPA, USED_GPA), -1);
	cr_assert_eq(try_setup(n, DESC_GPA, UINT64_MAX - 1, USED_GPA), -1);
	cr_assert_eq(try_setup(n, DESC_GPA, AVAIL_GPA, UINT64_MAX - 3), -1);
	cr_assert_eq(try_setup(n, 0xfffffffffffff000ULL, AVAIL_GPA, USED_GPA), -1);
}

Test(virtqueue, setup_alignment)
{
	cr_assert_eq(try_setup(16, DESC_GPA + 8, AVAIL_GPA, USED_GPA), -1);
	cr_assert_eq(try_setup(16, DESC_GPA, AVAIL_GPA + 1, USED_GPA), -1);
	cr_assert_eq(try_setup(16, DESC_GPA, AVAIL_GPA, USED_GPA + 2), -1);
	cr_assert_eq(try_setup(16, DESC_GPA + 16, AVAIL_GPA + 2, USED_GPA + 4), 0);
}

Test(virtqueue, setup_features)
{
	virtq_reset(&vq);
	cr_assert_eq(virtq_setup(&vq, &gm, 16, DESC_GPA, AVAIL_GPA, USED_GPA,
				 F_INDIRECT | (1ULL << VIRTIO_F_VERSION_1), NULL),
		     0);
	cr_assert(vq.indirect);
	cr_assert_not(vq.event_idx);
	virtq_reset(&vq);
	cr_assert_eq(virtq_setup(&vq, &gm, 16, DESC_GPA, AVAIL_GPA, USED_GPA, F_EVENT_IDX, NULL),
		     0);
	cr_assert_not(vq.indirect);
	cr_assert(vq.event_idx);
	cr_assert_eq(vq.desc_gpa, DESC_GPA);
	cr_assert_eq(vq.avail_gpa, AVAIL_GPA);
	cr_assert_eq(vq.used_gpa, USED_GPA);
}

Test(virtqueue, reset_clears_everything)
{
	static const struct virtqueue zero;

	set_desc(0, BUF_GPA, 8, 0, 0);
	set_desc(1, BUF_GPA, 8, VRING_DESC_F_NEXT, 1);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(virtq_push(&vq, 0, 1), 0);
	make_avail(1);
	cr_assert_eq(virtq_pop(&vq, &chain), -1);

	struct virtq_stats stats = vq.stats;
	virtq_reset(&vq);
	cr_assert_eq(memcmp(&vq.stats, &stats, sizeof(stats)), 0, "the lifetime stats stay");
	vq.stats = zero.stats;
	cr_assert_eq(memcmp(&vq, &zero, sizeof(vq)), 0);
	cr_assert_eq(virtq_pop(&vq, &chain), 0);
	cr_assert_not(virtq_has_avail(&vq));
	cr_assert_eq(virtq_push(&vq, 0, 0), -1);
	cr_assert_not(virtq_should_notify(&vq));
}

/* The lifetime counters `kestrel -v` prints: requests and bytes both ways, across a reset. */
Test(virtqueue, stats_count_requests_and_bytes)
{
	set_desc(0, BUF_GPA, 100, VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA + 100, 50, VRING_DESC_F_WRITE, 0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(vq.stats.bytes_read, 100);
	cr_assert_eq(vq.stats.requests, 0, "counted when used, not when popped");
	cr_assert_eq(virtq_push(&vq, 0, 30), 0);
	cr_assert_eq(vq.stats.requests, 1);
	cr_assert_eq(vq.stats.bytes_written, 30);
	cr_assert_eq(virtq_push(&vq, 0, 30), -1);
	cr_assert_eq(vq.stats.requests, 1, "a refused push is not a request");

	virtq_reset(&vq);
	queue_up(16, 0);
	set_desc(0, BUF_GPA, 100, VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA + 100, 50, VRING_DESC_F_WRITE, 0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(virtq_push(&vq, 0, 50), 0);
	cr_assert_eq(vq.stats.requests, 2);
	cr_assert_eq(vq.stats.bytes_read, 200);
	cr_assert_eq(vq.stats.bytes_written, 80);
}

/*
 * A transport counts kicks on its own loop while the device may reset the queue on another
 * (virtio-net's receive loop): no count may be lost to a reset.
 */
#define RACE_KICKS 2000000

static bool counting_done;

static void *count_kicks(void *arg)
{
	struct virtqueue *q = arg;

	for (int i = 0; i < RACE_KICKS; i++)
		__atomic_fetch_add(&q->stats.kicks, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&counting_done, true, __ATOMIC_RELEASE);
	return NULL;
}

Test(virtqueue, reset_never_loses_a_kick_counted_meanwhile)
{
	pthread_t th;
	uint64_t before = vq.stats.kicks;

	cr_assert_eq(pthread_create(&th, NULL, count_kicks, &vq), 0);
	while (!__atomic_load_n(&counting_done, __ATOMIC_ACQUIRE))
		virtq_reset(&vq);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(vq.stats.kicks, before + RACE_KICKS);
}
