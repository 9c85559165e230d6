/* Completing: the used ring, and interrupt and kick suppression (EVENT_IDX and the flags). */
#include <criterion/criterion.h>
#include <linux/virtio_config.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fixture_virtqueue.h"

TestSuite(virtqueue, .init = mem_init, .fini = mem_fini);

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
