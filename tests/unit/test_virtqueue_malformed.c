/* Chains a hostile guest can write: loops, out-of-range and overflowing descriptors, bad indexes.
 */
#include <criterion/criterion.h>
#include <linux/virtio_config.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fixture_virtqueue.h"

TestSuite(virtqueue, .init = mem_init, .fini = mem_fini);

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
