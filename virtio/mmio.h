/*
 * The virtio-mmio transport, version 2 (VIRTIO 1.2 §4.2.2): one 4 KiB register window and one
 * interrupt line per device. A register front end on the transport core (virtio/transport.h):
 * status, features, queue configuration and reset are the core's; this file only decodes the
 * registers, counts the interrupt causes in InterruptStatus and drives the line.
 *
 * Kicks: every queue's kick eventfd (the core's) is bound to QueueNotify with the queue index as
 * datamatch. Interrupts: an irqfd with a resample fd on the device's GSI. KVM raises the level line
 * when the irqfd is signalled and lowers it at the guest's EOI, then signals the resample fd; if
 * InterruptStatus is still non-zero then, the line is raised again, so a cause the driver has
 * not acknowledged is never lost. The KVM side is reached only through the platform.
 */
#ifndef KESTREL_VIRTIO_MMIO_H
#define KESTREL_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/device.h"
#include "virtio/transport.h"
#include "vmm/event_loop.h"

#define VIRTIO_MMIO_WINDOW 0x1000
#define VIRTIO_MMIO_VENDOR 0x4b534c54 /* "TLSK": kestrel */

struct virtio_mmio_platform {
	void *opaque;
	/* Bind or unbind efd to 4-byte guest writes of datamatch at MMIO address addr. */
	int (*ioeventfd)(void *opaque, int efd, uint64_t addr, uint32_t datamatch, bool assign,
			 struct kerr *err);
	/* Attach or detach efd as a level-triggered irqfd on gsi, with resample_fd. */
	int (*irqfd)(void *opaque, int efd, int resample_fd, uint32_t gsi, bool assign,
		     struct kerr *err);
	struct event_loop *loop;
};

/*
 * Locks: irq_lock guards InterruptStatus and is a leaf, like the core's lock; nothing is taken
 * while either is held (the irqfd write is a plain eventfd write).
 */
struct virtio_mmio {
	struct virtio_dev *dev;
	struct virtio_transport core;
	struct virtio_mmio_platform plat;
	uint64_t base; /* guest-physical address of the window */
	uint32_t gsi;

	pthread_mutex_t irq_lock;
	uint32_t interrupt_status; /* VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG */

	int irq_fd;		       /* irqfd: a write raises the line */
	struct event_handler resample; /* KVM lowered the line at EOI */
	bool irqfd_on;
	bool kicks_bound;
};

/* Wraps dev in a virtio-mmio window at base with interrupt gsi, and binds its kicks and irqfd. */
int virtio_mmio_create(struct virtio_mmio **out, struct virtio_dev *dev,
		       const struct virtio_mmio_platform *plat, uint64_t base, uint32_t gsi,
		       struct kerr *err);
void virtio_mmio_destroy(struct virtio_mmio *vm);

/*
 * Appends " virtio_mmio.device=4K@0xBASE:GSI" to cmdline (NUL-terminated, cap bytes in all):
 * how kernels with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES and no ACPI or device tree find the
 * device. Returns -1 when it does not fit.
 */
int virtio_mmio_cmdline_append(const struct virtio_mmio *vm, char *cmdline, size_t cap);

/* io_bus handler for the window (opaque = the virtio_mmio, offset from base). */
void virtio_mmio_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);

#endif
