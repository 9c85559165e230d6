/* Popping chains off the split virtqueue: direct, chained in any order, and indirect. */
#include <criterion/criterion.h>
#include <linux/virtio_config.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fixture_virtqueue.h"

TestSuite(virtqueue, .init = mem_init, .fini = mem_fini);

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
	fx_set_desc(TABLE_GPA, 0, BUF_GPA, 12, VRING_DESC_F_NEXT, 1);
	fx_set_desc(TABLE_GPA, 1, BUF_GPA + 0x100, 34, VRING_DESC_F_NEXT, 2);
	fx_set_desc(TABLE_GPA, 2, BUF_GPA + 0x200, 56, VRING_DESC_F_WRITE, 0);
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
	fx_set_desc(TABLE_GPA, 0, BUF_GPA + 0x100, 9, VRING_DESC_F_NEXT, 1);
	fx_set_desc(TABLE_GPA, 1, BUF_GPA + 0x200, 10, VRING_DESC_F_WRITE, 0);
	make_avail(0);

	cr_assert_eq(virtq_pop(&vq, &chain), 1);
	cr_assert_eq(chain.nr_segs, 3);
	expect_seg(0, BUF_GPA, 8, false);
	expect_seg(1, BUF_GPA + 0x100, 9, false);
	expect_seg(2, BUF_GPA + 0x200, 10, true);
}

Test(virtqueue, indirect_not_negotiated)
{
	fx_set_desc(TABLE_GPA, 0, BUF_GPA, 12, 0, 0);
	set_desc(0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_INDIRECT);
}

Test(virtqueue, nested_indirect)
{
	queue_up(16, F_INDIRECT);
	fx_set_desc(TABLE_GPA + 0x100, 0, BUF_GPA, 12, 0, 0);
	fx_set_desc(TABLE_GPA, 0, TABLE_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	set_desc(0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_INDIRECT);
}

Test(virtqueue, indirect_with_next)
{
	queue_up(16, F_INDIRECT);
	fx_set_desc(TABLE_GPA, 0, BUF_GPA, 12, 0, 0);
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
	fx_set_desc(TABLE_GPA, 0, BUF_GPA, 4, VRING_DESC_F_NEXT, 1);
	fx_set_desc(TABLE_GPA, 1, BUF_GPA, 4, VRING_DESC_F_NEXT, 0);
	set_desc(0, TABLE_GPA, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_LOOP);
}

Test(virtqueue, indirect_next_out_of_table)
{
	queue_up(16, F_INDIRECT);
	/* Index 2 is inside the queue but outside this 2-entry table. */
	fx_set_desc(TABLE_GPA, 0, BUF_GPA, 4, VRING_DESC_F_NEXT, 2);
	fx_set_desc(TABLE_GPA, 2, BUF_GPA, 4, 0, 0);
	set_desc(0, TABLE_GPA, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_NEXT);
}

Test(virtqueue, indirect_readable_after_direct_writable)
{
	queue_up(16, F_INDIRECT);
	set_desc(0, BUF_GPA, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(1, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	fx_set_desc(TABLE_GPA, 0, BUF_GPA + 0x100, 8, 0, 0);
	make_avail(0);
	expect_pop_error(VIRTQ_ERR_ORDER);
}

Test(virtqueue, too_many_segments)
{
	/* A full 1024-entry table is fine on its own ... */
	queue_up(16, F_INDIRECT);
	for (unsigned int i = 0; i < VIRTQ_MAX_SEGS; i++)
		fx_set_desc(TABLE_GPA, i, BUF_GPA, 1,
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
