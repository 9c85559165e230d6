#include "vmm/batch_policy.h"

bool batch_policy_pass(struct batch_policy *bp, unsigned int items)
{
	if (!items)
		return false;
	if (!bp->other) {
		if (items > 1) {
			bp->run = 0;
			bp->probing = false;
			return false;
		}
		if (++bp->run < (bp->probing ? BATCH_POLICY_PROBE_SINGLES : BATCH_POLICY_SINGLES))
			return false;
		bp->other = true;
		bp->to_other++;
	} else {
		/* More than one item although we preempt the guest at each kick: it streams. */
		if (items == 1 && ++bp->run < BATCH_POLICY_PROBE_AFTER)
			return false;
		bp->other = false;
		bp->probing = items == 1;
		bp->to_batch++;
	}
	bp->run = 0;
	return true;
}
