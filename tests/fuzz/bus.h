/*
 * The transport a fuzz target's device sits behind, as the harness drives it: the same ops
 * (status, features, queues, kicks, raw register accesses) reach virtio-pci through its BAR and
 * config space, or virtio-mmio through its window, so one input format fuzzes both.
 */
#ifndef KESTREL_FUZZ_BUS_H
#define KESTREL_FUZZ_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/device.h"
#include "virtio/transport.h"
#include "vmm/event_loop.h"

struct fuzz_bus {
	/* Puts d on the transport; the returned state is every other op's first argument. */
	void *(*up)(struct virtio_dev *d, struct event_loop *loop);
	void (*down)(void *s);
	struct virtio_transport *(*core)(void *s);
	/* FUZZ_CFG_*: PCI configuration space; virtio-mmio has none and uses its window. */
	void (*cfg_io)(void *s, uint16_t off, uint8_t *buf, unsigned int width, bool is_write);
	/* FUZZ_BAR_*: BAR 0, or the virtio-mmio window (offsets wrap to its size). */
	void (*win_io)(void *s, uint64_t off, uint8_t *buf, unsigned int width, bool is_write);
	void (*status)(void *s, uint8_t val);
	void (*features)(void *s, uint64_t val);
	void (*queue)(void *s, uint16_t q, uint16_t size, uint32_t desc, uint32_t avail,
		      uint32_t used, bool enable);
	void (*kick)(void *s, uint16_t q);
};

extern const struct fuzz_bus fuzz_bus_pci;
extern const struct fuzz_bus fuzz_bus_mmio;

#endif
