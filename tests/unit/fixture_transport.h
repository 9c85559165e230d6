/* A fake virtio transport that counts what a device asks of it: interrupts and resets. */
#pragma once

#include "virtio/device.h"

extern unsigned int signals[VIRTIO_MAX_QUEUES], needs_resets, config_signals;
/* signal_queue, signal_config and needs_reset, each counting into the variables above. */
extern const struct virtio_transport_ops fx_transport;

void fx_transport_clear(void);
void fx_signal_queue(struct virtio_dev *d, uint16_t q);
void fx_signal_config(struct virtio_dev *d);
void fx_needs_reset(struct virtio_dev *d);
