/* The fake device behind the transport-only fuzz targets (fake_dev.c). */
#ifndef KESTREL_FUZZ_FAKE_DEV_H
#define KESTREL_FUZZ_FAKE_DEV_H

#include "virtio/device.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"

struct virtio_dev *fake_dev_create(const struct guest_mem *mem, struct event_loop *loop);
void fake_dev_destroy(struct virtio_dev *d);

#endif
