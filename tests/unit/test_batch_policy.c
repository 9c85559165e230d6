/*
 * When the network loop runs as SCHED_BATCH (vmm/batch_policy.h), and the event loop applying
 * it to its own thread and no other (vmm/event_loop.c).
 */
#include <criterion/criterion.h>
#include <sched.h>

#include "vmm/batch_policy.h"
#include "vmm/event_loop.h"

/* Feeds n passes of `items` each; returns how many of them asked for a switch. */
static unsigned int feed(struct batch_policy *bp, unsigned int n, unsigned int items)
{
	unsigned int switches = 0;

	for (unsigned int i = 0; i < n; i++)
		switches += batch_policy_pass(bp, items);
	return switches;
}

Test(batch_policy, streaming_stays_batched)
{
	struct batch_policy bp = {0};

	/* Full passes with an occasional single one, as a guest sending a stream gives. */
	for (int i = 0; i < 1000; i++)
		cr_assert_not(batch_policy_pass(&bp, i % 7 ? 100 : 1));
	cr_assert_not(bp.other);
	cr_assert_eq(bp.to_other, 0);
}

Test(batch_policy, ping_pong_leaves_batching)
{
	struct batch_policy bp = {0};

	cr_assert_eq(feed(&bp, BATCH_POLICY_SINGLES - 1, 1), 0);
	cr_assert_not(bp.other);
	cr_assert(batch_policy_pass(&bp, 1));
	cr_assert(bp.other);
	cr_assert_eq(bp.to_other, 1);
}

Test(batch_policy, a_full_pass_restarts_the_count)
{
	struct batch_policy bp = {0};

	cr_assert_eq(feed(&bp, BATCH_POLICY_SINGLES - 1, 1), 0);
	cr_assert_not(batch_policy_pass(&bp, 2));
	cr_assert_eq(feed(&bp, BATCH_POLICY_SINGLES - 1, 1), 0);
	cr_assert_not(bp.other);
}

Test(batch_policy, empty_passes_do_not_count)
{
	struct batch_policy bp = {0};

	cr_assert_eq(feed(&bp, BATCH_POLICY_SINGLES - 1, 1), 0);
	cr_assert_eq(feed(&bp, 1000, 0), 0);
	cr_assert(batch_policy_pass(&bp, 1));
}

Test(batch_policy, a_stream_found_unbatched_goes_back_at_once)
{
	struct batch_policy bp = {0};

	feed(&bp, BATCH_POLICY_SINGLES, 1);
	cr_assert(bp.other);
	cr_assert_eq(feed(&bp, 10, 1), 0);
	cr_assert(batch_policy_pass(&bp, 3));
	cr_assert_not(bp.other);
	cr_assert_eq(bp.to_batch, 1);
	/* And needs a full count of singles to leave again. */
	cr_assert_eq(feed(&bp, BATCH_POLICY_SINGLES - 1, 1), 0);
}

Test(batch_policy, ping_pong_is_probed_now_and_then)
{
	struct batch_policy bp = {0};
	unsigned int batched = 0, n = BATCH_POLICY_SINGLES +
				      100 * (BATCH_POLICY_PROBE_AFTER + BATCH_POLICY_PROBE_SINGLES);

	for (unsigned int i = 0; i < n; i++) {
		batched += !bp.other;
		batch_policy_pass(&bp, 1);
	}
	/* After the first run of singles, each probe costs PROBE_SINGLES batched passes. */
	cr_assert_eq(bp.to_other, 101);
	cr_assert_eq(bp.to_batch, 100);
	cr_assert(bp.other);
	cr_assert_eq(batched, BATCH_POLICY_SINGLES + 100 * BATCH_POLICY_PROBE_SINGLES);
}

Test(batch_policy, a_probe_that_finds_a_stream_keeps_batching)
{
	struct batch_policy bp = {0};

	feed(&bp, BATCH_POLICY_SINGLES, 1);
	cr_assert_eq(feed(&bp, BATCH_POLICY_PROBE_AFTER, 1), 1);
	cr_assert_not(bp.other);
	cr_assert_not(batch_policy_pass(&bp, 40));
	/* No longer a probe: a full run of singles is needed to leave. */
	cr_assert_eq(feed(&bp, BATCH_POLICY_SINGLES - 1, 1), 0);
	cr_assert(batch_policy_pass(&bp, 1));
	cr_assert(bp.other);
}

/* ---- the event loop applies it to its own thread ---- */

struct probe {
	struct event_loop *el;
	unsigned int items, passes;
	int policy; /* the loop thread's, after the passes */
};

static void note_passes(void *arg)
{
	struct probe *p = arg;

	for (unsigned int i = 0; i < p->passes; i++)
		event_loop_note_pass(p->el, p->items);
	p->policy = sched_getscheduler(0);
}

static int loop_policy_after(struct event_loop *el, unsigned int passes, unsigned int items)
{
	struct probe p = {.el = el, .items = items, .passes = passes, .policy = -1};

	event_loop_call(el, note_passes, &p);
	return p.policy;
}

Test(batch_policy, the_loop_switches_its_own_thread)
{
	struct event_loop el;

	cr_assert_eq(event_loop_init(&el, NULL), 0);
	el.batch = true;
	cr_assert_eq(event_loop_start(&el, NULL), 0);
	cr_assert_eq(loop_policy_after(&el, 1, 100), SCHED_BATCH);
	cr_assert_eq(loop_policy_after(&el, BATCH_POLICY_SINGLES, 1), SCHED_OTHER);
	cr_assert_eq(loop_policy_after(&el, 1, 5), SCHED_BATCH);
	cr_assert_eq(loop_policy_after(&el, BATCH_POLICY_SINGLES + BATCH_POLICY_PROBE_AFTER, 1),
		     SCHED_BATCH);
	cr_assert_not(el.batch_failed);
	event_loop_destroy(&el);
	cr_assert_eq(el.policy.to_other, 2);
	cr_assert_eq(el.policy.to_batch, 2);
	/* Called from any other thread it changes nothing, there or in the loop. */
	for (int i = 0; i < 2 * BATCH_POLICY_SINGLES; i++)
		event_loop_note_pass(&el, 1);
	cr_assert_eq(sched_getscheduler(0), SCHED_OTHER);
	cr_assert_eq(el.policy.to_other, 2);
}

Test(batch_policy, a_loop_without_batch_never_switches)
{
	struct event_loop el;

	cr_assert_eq(event_loop_init(&el, NULL), 0);
	cr_assert_eq(event_loop_start(&el, NULL), 0);
	cr_assert_eq(loop_policy_after(&el, 10 * BATCH_POLICY_SINGLES, 1), SCHED_OTHER);
	cr_assert_eq(loop_policy_after(&el, 1, 100), SCHED_OTHER);
	event_loop_destroy(&el);
	cr_assert_eq(el.policy.to_other + el.policy.to_batch, 0);
}
