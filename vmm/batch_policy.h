/*
 * When the network loop runs as SCHED_BATCH, decided from what its passes find.
 *
 * Batching pays while the guest streams: a SCHED_BATCH thread never preempts the running
 * vCPU at a kick, so the guest fills the ring meanwhile and one pass drains it (a hundred
 * frames and more). It costs a latency-bound guest (one request, one answer) the time from
 * its kick to its halt on every exchange, and buys it nothing: every pass finds the one frame.
 * So the loop stays SCHED_BATCH while its passes find more than one item, and after
 * BATCH_POLICY_SINGLES single-item passes in a row turns SCHED_OTHER. There every pass finds one
 * item whatever the guest does (the loop preempts it at its kick), so nothing tells streaming
 * from ping-pong: a pass that still finds more sends it back to SCHED_BATCH at once, and every
 * BATCH_POLICY_PROBE_AFTER passes it goes back to look again. A probe that sees
 * BATCH_POLICY_PROBE_SINGLES single-item passes in a row returns to SCHED_OTHER; one full pass
 * ends the probe and batching stays. Streaming under SCHED_BATCH finds one item in 2-9% of its
 * passes, a guest answering TCP ACKs in 55%: neither reaches those runs by chance.
 * docs/performance.md ("Network") has the measurements.
 *
 * Pure state, no system calls: the event loop (vmm/event_loop.c) feeds it and applies it.
 */
#ifndef KESTREL_BATCH_POLICY_H
#define KESTREL_BATCH_POLICY_H

#include <stdbool.h>
#include <stdint.h>

enum {
	BATCH_POLICY_SINGLES = 32,	/* single-item passes in a row that end batching */
	BATCH_POLICY_PROBE_AFTER = 64,	/* SCHED_OTHER passes before batching is tried again */
	BATCH_POLICY_PROBE_SINGLES = 8, /* the same as SINGLES, in a probe */
};

struct batch_policy {
	bool other;	   /* SCHED_OTHER now; SCHED_BATCH otherwise (the start) */
	bool probing;	   /* SCHED_BATCH to look again, not yet seen a full pass */
	unsigned int run;  /* batching: single-item passes in a row; SCHED_OTHER: passes so far */
	uint64_t to_other; /* switches each way, for -v */
	uint64_t to_batch;
};

/*
 * One pass over batched work found `items` (passes that found nothing are not counted).
 * Returns true when the thread should change policy now; bp->other says to which.
 */
bool batch_policy_pass(struct batch_policy *bp, unsigned int items);

#endif
