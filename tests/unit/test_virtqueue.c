/*
 * The split virtqueue against a hand-written driver: descriptors and rings are poked straight
 * into a fake 16 MiB guest RAM, as a (possibly hostile) guest would.
 */
#include <criterion/criterion.h>
#include <linux/virtio_config.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "virtio/queue.h"
#include "vmm/guest_mem.h"

#define MiB (1ULL << 20)
#define RAM_SIZE (16 * MiB)

#define DESC_GPA 0x1000ULL  /* up to 1024 * 16 bytes */
#define AVAIL_GPA 0x5000ULL /* up to 6 + 2 * 1024 bytes */
#define USED_GPA 0x6000ULL  /* up to 6 + 8 * 1024 bytes */
#define TABLE_GPA 0x10000ULL
#define BUF_GPA 0x100000ULL

#define F_INDIRECT (1ULL << VIRTIO_RING_F_INDIRECT_DESC)
#define F_EVENT_IDX (1ULL << VIRTIO_RING_F_EVENT_IDX)

static struct guest_mem gm;
static struct virtqueue vq;
static struct virtq_chain chain; /* too big for a test's stack frame */
static uint16_t drv_avail_idx;	 /* the fake driver's avail->idx */

static uint8_t *host(uint64_t gpa)
{
	return gm.regions[0].host + gpa;
}

static struct vring_desc *desc_at(uint64_t table_gpa, unsigned int i)
{
	return (struct vring_desc *)host(table_gpa) + i;
}

static void set_desc_in(uint64_t table_gpa, unsigned int i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next)
{
	struct vring_desc *d = desc_at(table_gpa, i);

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

static void set_desc(unsigned int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	set_desc_in(DESC_GPA, i, addr, len, flags, next);
}

static struct vring_avail *avail(void)
{
	return (struct vring_avail *)host(AVAIL_GPA);
}

static struct vring_used *used(void)
{
	return (struct vring_used *)host(USED_GPA);
}

static uint16_t *used_event(unsigned int size)
{
	return &avail()->ring[size];
}

static uint16_t *avail_event(unsigned int size)
{
	return (uint16_t *)&used()->ring[size];
}

static void make_avail(uint16_t head)
{
	avail()->ring[drv_avail_idx & (vq.size - 1)] = head;
	drv_avail_idx++;
	__atomic_store_n(&avail()->idx, drv_avail_idx, __ATOMIC_RELEASE);
}

static void queue_up(unsigned int size, uint64_t features)
{
	/* The driver zeroes its rings before enabling the queue. */
	memset(host(DESC_GPA), 0, BUF_GPA - DESC_GPA);
	drv_avail_idx = 0;
	virtq_reset(&vq);
	cr_assert_eq(virtq_setup(&vq, &gm, size, DESC_GPA, AVAIL_GPA, USED_GPA, features, NULL), 0);
}

static void mem_init(void)
{
	struct guest_mem_region layout = {.gpa = 0, .size = RAM_SIZE};

	cr_assert_eq(guest_mem_map(&gm, &layout, 1, NULL), 0);
	queue_up(16, 0);
}

static void mem_fini(void)
{
	guest_mem_unmap(&gm);
}

TestSuite(virtqueue, .init = mem_init, .fini = mem_fini);

static void expect_pop_error(enum virtq_error e)
{
	cr_assert_eq(virtq_pop(&vq, &chain), -1);
	cr_assert_eq(vq.last_error, e, "got %s, want %s", virtq_strerror(vq.last_error),
		     virtq_strerror(e));
	cr_assert_eq(vq.errors[e], 1);
	cr_assert(vq.broken);
	/* Nothing is consumed from a rejected chain. */
	cr_assert_eq(vq.last_avail_idx, 0);
}

static void expect_seg(unsigned int i, uint64_t gpa, uint32_t len, bool writable)
{
	cr_assert_lt(i, chain.nr_segs);
	cr_assert_eq(chain.segs[i].addr, host(gpa), "seg %u", i);
	cr_assert_eq(chain.segs[i].len, len, "seg %u", i);
	cr_assert_eq(chain.segs[i].writable, writable, "seg %u", i);
}

/* Popping */

Test(virtqueue, simple_read_write)
{
	set_desc(0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA + 0x1000, 32, VRING_DESC_F_WRITE, 0);
	cr_assert_not(virtq_has_avail(&vq));
	make_avail(0);
	cr_assert(virtq_has_avail(&vq));

	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.head, 0);
	cr_assert_eq(chain.nr_segs, 2);
	cr_assert_eq(chain.nr_readable, 1);
	expect_seg(0, BUF_GPA, 16, false);
	expect_seg(1, BUF_GPA + 0x1000, 32, true);
	cr_assert_eq(chain.readable_bytes, 16);
	cr_assert_eq(chain.writable_bytes, 32);
	cr_assert_eq(vq.last_avail_idx, 1);
	cr_assert_not(virtq_has_avail(&vq));
	cr_assert_eq(virtq_pop(&vq, &chain), 0);
}

Test(virtqueue, chain_with_next_in_any_order)
{
	set_desc(5, BUF_GPA, 10, VRING_DESC_F_NEXT, 2);
	set_desc(2, BUF_GPA + 0x100, 20, VRING_DESC_F_NEXT, 7);
	set_desc(7, BUF_GPA + 0x200, 30, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 15);
	set_desc(15, BUF_GPA + 0x300, 40, VRING_DESC_F_WRITE, 3); /* no NEXT: next ignored */
	make_avail(5);

	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.head, 5);
	cr_assert_eq(chain.nr_segs, 4);
	cr_assert_eq(chain.nr_readable, 2);
	expect_seg(0, BUF_GPA, 10, false);
	expect_seg(1, BUF_GPA + 0x100, 20, false);
	expect_seg(2, BUF_GPA + 0x200, 30, true);
	expect_seg(3, BUF_GPA + 0x300, 40, true);
	cr_assert_eq(chain.readable_bytes, 30);
	cr_assert_eq(chain.writable_bytes, 70);
}

Test(virtqueue, full_length_chain_is_not_a_loop)
{
	for (unsigned int i = 0; i < 16; i++)
		set_desc(i, BUF_GPA + i * 0x100, 8, i < 15 ? VRING_DESC_F_NEXT : 0, i + 1);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.nr_segs, 16);
	cr_assert_eq(chain.readable_bytes, 128);
}

Test(virtqueue, zero_length_descriptor_is_dropped)
{
	set_desc(0, BUF_GPA, 4, VRING_DESC_F_NEXT, 1);
	set_desc(1, RAM_SIZE + 0x1000, 0, VRING_DESC_F_NEXT, 2); /* empty: address unused */
	set_desc(2, BUF_GPA + 0x100, 4, VRING_DESC_F_WRITE, 0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.nr_segs, 2);
	expect_seg(0, BUF_GPA, 4, false);
	expect_seg(1, BUF_GPA + 0x100, 4, true);
}

Test(virtqueue, multiple_chains_in_order)
{
	set_desc(4, BUF_GPA, 1, 0, 0);
	set_desc(1, BUF_GPA + 0x10, 2, 0, 0);
	set_desc(9, BUF_GPA + 0x20, 3, VRING_DESC_F_WRITE, 0);
	make_avail(4);
	make_avail(1);
	make_avail(9);

	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.head, 4);
	expect_seg(0, BUF_GPA, 1, false);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.head, 1);
	expect_seg(0, BUF_GPA + 0x10, 2, false);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.head, 9);
	expect_seg(0, BUF_GPA + 0x20, 3, true);
	cr_assert_eq(chain.nr_readable, 0);
	cr_assert_eq(virtq_pop(&vq, &chain), 0);
	cr_assert_eq(vq.inflight, 3);
}

Test(virtqueue, unpop_returns_the_chain)
{
	set_desc(2, BUF_GPA, 4, VRING_DESC_F_WRITE, 0);
	set_desc(3, BUF_GPA + 0x100, 4, VRING_DESC_F_WRITE, 0);
	make_avail(2);
	make_avail(3);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.head, 3);
	virtq_unpop(&vq);
	cr_assert_eq(vq.inflight, 1);
	cr_assert(virtq_has_avail(&vq));
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.head, 3);
	cr_assert_eq(virtq_pop(&vq, &chain), 0);
}

Test(virtqueue, empty_avail)
{
	cr_assert_eq(virtq_pop(&vq, &chain), 0);
	cr_assert_not(virtq_has_avail(&vq));
	cr_assert_not(vq.broken);
	cr_assert_eq(vq.last_avail_idx, 0);
}

Test(virtqueue, not_ready_pops_nothing)
{
	set_desc(0, BUF_GPA, 4, 0, 0);
	make_avail(0);
	virtq_reset(&vq);
	cr_assert_eq(virtq_pop(&vq, &chain), 0);
	cr_assert_not(virtq_has_avail(&vq));
}

/* Indirect descriptors */

Test(virtqueue, indirect_table)
{
	queue_up(16, F_INDIRECT);
	set_desc_in(TABLE_GPA, 0, BUF_GPA, 12, VRING_DESC_F_NEXT, 1);
	set_desc_in(TABLE_GPA, 1, BUF_GPA + 0x100, 34, VRING_DESC_F_NEXT, 2);
	set_desc_in(TABLE_GPA, 2, BUF_GPA + 0x200, 56, VRING_DESC_F_WRITE, 0);
	/* §2.7.5.3.2: the device ignores WRITE on the descriptor naming the table. */
	set_desc(3, TABLE_GPA, 3 * 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
	make_avail(3);

	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.head, 3);
	cr_assert_eq(chain.nr_segs, 3);
	cr_assert_eq(chain.nr_readable, 2);
	expect_seg(0, BUF_GPA, 12, false);
	expect_seg(1, BUF_GPA + 0x100, 34, false);
	expect_seg(2, BUF_GPA + 0x200, 56, true);
	cr_assert_eq(chain.readable_bytes, 46);
	cr_assert_eq(chain.writable_bytes, 56);
}

Test(virtqueue, direct_then_indirect)
{
	queue_up(16, F_INDIRECT);
	set_desc(0, BUF_GPA, 8, VRING_DESC_F_NEXT, 6);
	set_desc(6, TABLE_GPA, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	set_desc_in(TABLE_GPA, 0, BUF_GPA + 0x100, 9, VRING_DESC_F_NEXT, 1);
	set_desc_in(TABLE_GPA, 1, BUF_GPA + 0x200, 10, VRING_DESC_F_WRITE, 0);
	make_avail(0);

	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.nr_segs, 3);
	expect_seg(0, BUF_GPA, 8, false);
	expect_seg(1, BUF_GPA + 0x100, 9, false);
	expect_seg(2, BUF_GPA + 0x200, 10, true);
}

Test(virtqueue, indirect_not_negotiated)
{
	set_desc_in(TABLE_GPA, 0, BUF_GPA, 12, 0, 0);
	set_desc(0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_INDIRECT);
}

Test(virtqueue, nested_indirect)
{
	queue_up(16, F_INDIRECT);
	set_desc_in(TABLE_GPA + 0x100, 0, BUF_GPA, 12, 0, 0);
	set_desc_in(TABLE_GPA, 0, TABLE_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	set_desc(0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_INDIRECT);
}

Test(virtqueue, indirect_with_next)
{
	queue_up(16, F_INDIRECT);
	set_desc_in(TABLE_GPA, 0, BUF_GPA, 12, 0, 0);
	set_desc(0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA, 4, VRING_DESC_F_WRITE, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_INDIRECT);
}

Test(virtqueue, indirect_bad_table_length)
{
	static const uint32_t bad[] = {0, 8, 24, 17, (VIRTQ_MAX_SEGS + 1) * 16};

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		queue_up(16, F_INDIRECT);
		set_desc(0, TABLE_GPA, bad[i], VRING_DESC_F_INDIRECT, 0);
		make_avail(0);
		cr_assert_eq(virtq_pop(&vq, &chain), -1, "table length %u", bad[i]);
		cr_assert_eq(vq.last_error, VIRTQ_ERR_INDIRECT, "table length %u", bad[i]);
	}
}

Test(virtqueue, indirect_table_outside_ram)
{
	queue_up(16, F_INDIRECT);
	set_desc(0, RAM_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_ADDR);
}

Test(virtqueue, indirect_loop)
{
	queue_up(16, F_INDIRECT);
	set_desc_in(TABLE_GPA, 0, BUF_GPA, 4, VRING_DESC_F_NEXT, 1);
	set_desc_in(TABLE_GPA, 1, BUF_GPA, 4, VRING_DESC_F_NEXT, 0);
	set_desc(0, TABLE_GPA, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_LOOP);
}

Test(virtqueue, indirect_next_out_of_table)
{
	queue_up(16, F_INDIRECT);
	/* Index 2 is inside the queue but outside this 2-entry table. */
	set_desc_in(TABLE_GPA, 0, BUF_GPA, 4, VRING_DESC_F_NEXT, 2);
	set_desc_in(TABLE_GPA, 2, BUF_GPA, 4, 0, 0);
	set_desc(0, TABLE_GPA, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_NEXT);
}

Test(virtqueue, indirect_readable_after_direct_writable)
{
	queue_up(16, F_INDIRECT);
	set_desc(0, BUF_GPA, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(1, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	set_desc_in(TABLE_GPA, 0, BUF_GPA + 0x100, 8, 0, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_ORDER);
}

Test(virtqueue, too_many_segments)
{
	/* A full 1024-entry table is fine on its own ... */
	queue_up(16, F_INDIRECT);
	for (unsigned int i = 0; i < VIRTQ_MAX_SEGS; i++)
		set_desc_in(TABLE_GPA, i, BUF_GPA, 1,
			    i + 1 < VIRTQ_MAX_SEGS ? VRING_DESC_F_NEXT : 0, i + 1);
	set_desc(0, TABLE_GPA, VIRTQ_MAX_SEGS * 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.nr_segs, VIRTQ_MAX_SEGS);

	/* ... but one direct buffer in front of it is one segment too many. */
	set_desc(1, BUF_GPA, 1, VRING_DESC_F_NEXT, 0);
	make_avail(1);
	cr_assert_eq(virtq_pop(&vq, &chain), -1);
	cr_assert_eq(vq.last_error, VIRTQ_ERR_TOO_MANY_SEGS);
}

/* Malformed chains */

Test(virtqueue, loop)
{
	set_desc(0, BUF_GPA, 4, VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA, 4, VRING_DESC_F_NEXT, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_LOOP);
}

Test(virtqueue, self_loop)
{
	set_desc(3, BUF_GPA, 4, VRING_DESC_F_NEXT, 3);
	make_avail(3);
	expect_pop_error(VIRTQ_ERR_LOOP);
}

Test(virtqueue, next_out_of_range)
{
	set_desc(0, BUF_GPA, 4, VRING_DESC_F_NEXT, 16);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_NEXT);
}

Test(virtqueue, head_out_of_range)
{
	make_avail(16);
	expect_pop_error(VIRTQ_ERR_HEAD);
}

Test(virtqueue, buffer_outside_ram)
{
	set_desc(0, RAM_SIZE, 1, 0, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_ADDR);
}

Test(virtqueue, buffer_straddling_end_of_ram)
{
	set_desc(0, RAM_SIZE - 8, 9, VRING_DESC_F_WRITE, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_ADDR);
}

Test(virtqueue, buffer_wrapping_2_64)
{
	set_desc(0, UINT64_MAX - 7, 16, 0, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_ADDR);
}

Test(virtqueue, buffer_ending_at_end_of_ram)
{
	set_desc(0, RAM_SIZE - 8, 8, 0, 0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	expect_seg(0, RAM_SIZE - 8, 8, false);
}

Test(virtqueue, readable_after_writable)
{
	set_desc(0, BUF_GPA, 4, VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA + 0x100, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	set_desc(2, BUF_GPA + 0x200, 4, 0, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_ORDER);
}

Test(virtqueue, total_length_overflows_u32)
{
	/* 8 MiB buffers repeated: 511 of them stay under 4 GiB, 512 reach 2^32. */
	queue_up(1024, 0);
	for (unsigned int i = 0; i < 1024; i++)
		set_desc(i, BUF_GPA, 8 * MiB, VRING_DESC_F_NEXT, i + 1);
	set_desc(510, BUF_GPA, 8 * MiB, 0, 0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.readable_bytes, 511 * 8 * MiB);

	set_desc(510, BUF_GPA, 8 * MiB, VRING_DESC_F_NEXT, 511);
	set_desc(511, BUF_GPA, 8 * MiB, 0, 0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), -1);
	cr_assert_eq(vq.last_error, VIRTQ_ERR_LEN);
}

Test(virtqueue, avail_idx_jump)
{
	for (unsigned int i = 0; i < 16; i++)
		set_desc(i, BUF_GPA, 4, 0, 0);
	/* Exactly a queue's worth is legal ... */
	for (unsigned int i = 0; i < 16; i++)
		make_avail(i);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(vq.last_avail_idx, 1);

	/* ... 17 ahead of what we consumed is not. */
	make_avail(0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), -1);
	cr_assert_eq(vq.last_error, VIRTQ_ERR_AVAIL_IDX);
	cr_assert_eq(vq.last_avail_idx, 1);
}

Test(virtqueue, avail_idx_going_backwards)
{
	set_desc(0, BUF_GPA, 4, 0, 0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	/* A driver rewinding its index looks like a jump of 65535. */
	avail()->idx = 0;
	cr_assert_eq(virtq_pop(&vq, &chain), -1);
	cr_assert_eq(vq.last_error, VIRTQ_ERR_AVAIL_IDX);
}

Test(virtqueue, broken_until_reset)
{
	set_desc(0, BUF_GPA, 4, VRING_DESC_F_NEXT, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_LOOP);
	set_desc(0, BUF_GPA, 4, 0, 0); /* the guest "fixes" it: too late */
	cr_assert_eq(virtq_pop(&vq, &chain), -1);
	cr_assert_not(virtq_has_avail(&vq));

	queue_up(16, 0);
	set_desc(0, BUF_GPA, 4, 0, 0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
}

/* Completing */

Test(virtqueue, used_ring_after_push)
{
	set_desc(4, BUF_GPA, 8, VRING_DESC_F_WRITE, 0);
	set_desc(1, BUF_GPA + 0x100, 8, VRING_DESC_F_WRITE, 0);
	make_avail(4);
	make_avail(1);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);

	/* Out of order completion is allowed. */
	cr_assert_eq(virtq_push(&vq, 1, 0), 0);
	cr_assert_eq(used()->idx, 1);
	cr_assert_eq(virtq_push(&vq, 4, 7), 0);
	cr_assert_eq(used()->idx, 2);
	cr_assert_eq(used()->ring[0].id, 1);
	cr_assert_eq(used()->ring[0].len, 0);
	cr_assert_eq(used()->ring[1].id, 4);
	cr_assert_eq(used()->ring[1].len, 7);
	cr_assert_eq(vq.inflight, 0);

	/* Nothing left in flight: a third push is a device bug and writes nothing. */
	cr_assert_eq(virtq_push(&vq, 4, 1), -1);
	cr_assert_eq(used()->idx, 2);
	cr_assert_eq(vq.errors[VIRTQ_ERR_PUSH], 1);
}

Test(virtqueue, push_bad_head)
{
	set_desc(0, BUF_GPA, 8, 0, 0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(virtq_push(&vq, 16, 1), -1);
	cr_assert_eq(used()->idx, 0);
	cr_assert_eq(vq.inflight, 1);
}

Test(virtqueue, used_ring_wraps)
{
	queue_up(4, 0);
	for (unsigned int i = 0; i < 4; i++)
		set_desc(i, BUF_GPA, 8, 0, 0);
	for (unsigned int n = 0; n < 6; n++) {
		make_avail(n % 4);
		cr_assert_eq(virtq_pop(&vq, &chain), 1);
		cr_assert_eq(chain.head, n % 4);
		cr_assert_eq(virtq_push(&vq, chain.head, 100 + n), 0);
	}
	cr_assert_eq(used()->idx, 6);
	/* Entry 5 went to slot 5 % 4 = 1. */
	cr_assert_eq(used()->ring[1].id, 1);
	cr_assert_eq(used()->ring[1].len, 105);
	cr_assert_eq(used()->ring[3].len, 103);
}

/* Interrupt suppression */

/* One pop/push round trip; returns the notification decision. */
static bool round_trip(unsigned int pushes)
{
	for (unsigned int i = 0; i < pushes; i++) {
		make_avail(0);
		cr_assert_eq(virtq_pop(&vq, &chain), 1);
		cr_assert_eq(virtq_push(&vq, 0, 0), 0);
	}
	return virtq_should_notify(&vq);
}

/* Advances both indexes to start with a decision already taken there. */
static void advance_to(uint16_t idx)
{
	*used_event(vq.size) = 0;
	while (vq.used_idx != idx)
		round_trip(1);
	virtq_should_notify(&vq);
	cr_assert_eq(vq.signalled_used, idx);
}

Test(virtqueue, event_idx_basic)
{
	queue_up(16, F_EVENT_IDX);
	set_desc(0, BUF_GPA, 8, 0, 0);

	cr_assert_not(virtq_should_notify(&vq), "nothing pushed");
	*used_event(16) = 0;
	cr_assert(round_trip(1), "used_event 0 crossed by 0 -> 1");
	cr_assert_not(virtq_should_notify(&vq), "nothing pushed since");

	*used_event(16) = 5;
	cr_assert_not(round_trip(1), "1 -> 2 does not reach 5");
	cr_assert_not(round_trip(2), "2 -> 4 does not reach 5");
	cr_assert_not(round_trip(1), "4 -> 5: entry 5 not used yet");
	cr_assert(round_trip(1), "5 -> 6 uses entry 5");
	cr_assert_not(round_trip(1), "6 -> 7: driver's used_event is stale");
}

Test(virtqueue, event_idx_positions_in_batch)
{
	/* old = 10, push 4 -> new = 14: notify iff used_event in [10, 14). */
	static const struct {
		uint16_t ev;
		bool want;
	} cases[] = {
	    {9, false}, {10, true}, {12, true}, {13, true}, {14, false}, {200, false},
	};

	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		queue_up(16, F_EVENT_IDX);
		set_desc(0, BUF_GPA, 8, 0, 0);
		advance_to(10);
		*used_event(16) = cases[i].ev;
		cr_assert_eq(round_trip(4), cases[i].want, "used_event %u", cases[i].ev);
	}
}

Test(virtqueue, event_idx_across_wrap)
{
	static const struct {
		uint16_t start;
		unsigned int pushes;
		uint16_t ev;
		bool want;
	} cases[] = {
	    {65534, 1, 65535, false}, /* 65534 -> 65535 */
	    {65535, 1, 65535, true},  /* 65535 -> 0 */
	    {65534, 3, 65535, true},  /* 65534 -> 1 */
	    {65534, 3, 0, true},      {65534, 3, 1, false},
	    {65534, 3, 65533, false}, {65535, 2, 0, true}, /* 65535 -> 1 */
	    {0, 1, 65535, false},
	};

	queue_up(16, F_EVENT_IDX);
	set_desc(0, BUF_GPA, 8, 0, 0);
	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		advance_to(cases[i].start);
		*used_event(16) = cases[i].ev;
		cr_assert_eq(round_trip(cases[i].pushes), cases[i].want, "case %u", i);
	}
	cr_assert_eq(used()->idx, vq.used_idx);
}

Test(virtqueue, event_idx_ignores_no_interrupt)
{
	queue_up(16, F_EVENT_IDX);
	set_desc(0, BUF_GPA, 8, 0, 0);
	avail()->flags = VRING_AVAIL_F_NO_INTERRUPT;
	*used_event(16) = 0;
	cr_assert(round_trip(1));
}

Test(virtqueue, no_interrupt_flag_without_event_idx)
{
	set_desc(0, BUF_GPA, 8, 0, 0);
	*used_event(16) = 100; /* must be ignored without EVENT_IDX */
	cr_assert(round_trip(1));
	avail()->flags = VRING_AVAIL_F_NO_INTERRUPT;
	cr_assert_not(round_trip(1));
	cr_assert_not(round_trip(3));
	avail()->flags = 0;
	cr_assert(round_trip(1));
	cr_assert_not(virtq_should_notify(&vq), "nothing pushed since");
}

/* Kick suppression */

Test(virtqueue, enable_notify_writes_avail_event)
{
	queue_up(16, F_EVENT_IDX);
	set_desc(0, BUF_GPA, 8, 0, 0);
	*avail_event(16) = 0xbeef;

	virtq_disable_notify(&vq);
	make_avail(0);
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(*avail_event(16), 0xbeef, "pops leave avail_event alone while disabled");
	cr_assert_eq(used()->flags, 0, "EVENT_IDX does not use NO_NOTIFY");

	cr_assert_not(virtq_enable_notify(&vq));
	cr_assert_eq(*avail_event(16), 2);

	/* While enabled, each pop asks for the kick after it. */
	make_avail(0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(*avail_event(16), 3);
}

Test(virtqueue, enable_notify_rechecks)
{
	queue_up(16, F_EVENT_IDX);
	set_desc(0, BUF_GPA, 8, 0, 0);
	virtq_disable_notify(&vq);
	/* The driver adds a buffer while kicks are off and, seeing them off, does not kick. */
	make_avail(0);
	cr_assert(virtq_enable_notify(&vq), "entry added meanwhile must be reported");
	cr_assert_eq(*avail_event(16), 0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_not(virtq_enable_notify(&vq));
}

Test(virtqueue, no_notify_flag_without_event_idx)
{
	set_desc(0, BUF_GPA, 8, 0, 0);
	*avail_event(16) = 0x1234;
	virtq_disable_notify(&vq);
	cr_assert_eq(used()->flags, VRING_USED_F_NO_NOTIFY);
	make_avail(0);
	cr_assert(virtq_enable_notify(&vq));
	cr_assert_eq(used()->flags, 0);
	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(*avail_event(16), 0x1234, "avail_event untouched without EVENT_IDX");
}

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
