#include <string.h>

#include "fixture_transport.h"

unsigned int signals[VIRTIO_MAX_QUEUES], needs_resets, config_signals;

const struct virtio_transport_ops fx_transport = {
    .signal_queue = fx_signal_queue,
    .signal_config = fx_signal_config,
    .needs_reset = fx_needs_reset,
};

void fx_transport_clear(void)
{
	memset(signals, 0, sizeof(signals));
	needs_resets = config_signals = 0;
}

/* Atomic: a device may complete requests on a thread of its own. */
void fx_signal_queue(struct virtio_dev *d, uint16_t q)
{
	(void)d;
	__atomic_fetch_add(&signals[q], 1, __ATOMIC_SEQ_CST);
}

void fx_signal_config(struct virtio_dev *d)
{
	(void)d;
	config_signals++;
}

void fx_needs_reset(struct virtio_dev *d)
{
	(void)d;
	needs_resets++;
}
