/*
 * The seam between a virtio device model (blk, console, net) and the transport that carries
 * it (PCI or MMIO). A device fills in the ops table and a struct virtio_dev; the transport owns
 * feature negotiation, device status, queue setup and interrupts, and calls the device back.
 * A device knows nothing about which transport carries it.
 */
#ifndef KESTREL_VIRTIO_DEVICE_H
#define KESTREL_VIRTIO_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/queue.h"
#include "vmm/error.h"
#include "vmm/guest_mem.h"

#define VIRTIO_MAX_QUEUES 64

struct virtio_dev;
struct event_loop;
struct virtio_transport;

struct virtio_dev_ops {
	/* Device-specific configuration space (the device's own struct, little-endian). */
	void (*config_read)(struct virtio_dev *d, uint32_t offset, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_dev *d, uint32_t offset, const uint8_t *data,
			     uint32_t len);
	/*
	 * The driver set DRIVER_OK: queues are set up and features final. The device starts
	 * serving its queues. Returns -1 if it cannot (the transport sets NEEDS_RESET).
	 */
	int (*activate)(struct virtio_dev *d);
	/*
	 * Optional: may the driver accept these features (dependencies between bits)? Asked when
	 * the driver sets FEATURES_OK; false leaves FEATURES_OK clear.
	 */
	bool (*validate_features)(struct virtio_dev *d, uint64_t features);
	/* The driver wrote 0 to the status: stop all work and forget all queue state. */
	void (*reset)(struct virtio_dev *d);
	/* The driver kicked queue q. Runs on the event-loop thread that polls the queue's
	 * ioeventfd (the transport's, or queue_loop's). */
	void (*queue_notify)(struct virtio_dev *d, uint16_t q);
	/*
	 * Optional: the driver changed which interrupt queue q raises (MSI-X vector) while the
	 * device is active. A device that handed its rings to the kernel (vhost) re-binds the
	 * call fd from transport->call_fd here. Runs on the event-loop thread.
	 */
	void (*queue_irq_changed)(struct virtio_dev *d, uint16_t q);
	/*
	 * Optional: the event loop whose thread polls queue q's kicks, when not the transport's
	 * (NULL). Asked once, when the transport is set up. queue_notify then runs there, so a
	 * device that answers must serialize it with its other ops itself (its lock).
	 */
	struct event_loop *(*queue_loop)(struct virtio_dev *d, uint16_t q);
};

/* What the transport offers the device: interrupts and error reporting. */
struct virtio_transport_ops {
	/* Used buffers were added to queue q (the device already checked suppression). */
	void (*signal_queue)(struct virtio_dev *d, uint16_t q);
	/* The device configuration changed. */
	void (*signal_config)(struct virtio_dev *d);
	/* The device hit a guest error it cannot recover from: set DEVICE_NEEDS_RESET. */
	void (*needs_reset)(struct virtio_dev *d);
	/*
	 * For devices whose data path bypasses kestrel (vhost): the eventfd signalled by guest
	 * kicks on queue q, and whether the transport keeps polling it (false: the kernel reads
	 * it, queue_notify is no longer called for q).
	 */
	int (*kick_fd)(struct virtio_dev *d, uint16_t q);
	void (*poll_kicks)(struct virtio_dev *d, uint16_t q, bool poll);
	/*
	 * An eventfd whose signal interrupts the driver for queue q (an irqfd on the queue's
	 * MSI-X vector), or -1 when there is none (MSI-X off or no vector): then the device
	 * must use signal_queue (e.g. by polling its own eventfd).
	 */
	int (*call_fd)(struct virtio_dev *d, uint16_t q);
};

struct virtio_dev {
	const char *name;   /* for messages: "virtio-blk vda" */
	uint32_t device_id; /* VIRTIO_ID_* */
	const struct virtio_dev_ops *ops;
	void *priv;
	const struct guest_mem *mem;

	uint64_t host_features;	 /* offered; the transport adds VIRTIO_F_VERSION_1 */
	uint64_t guest_features; /* accepted by the driver (valid from FEATURES_OK) */
	uint32_t config_len;
	uint16_t num_queues;
	uint16_t queue_max_size;
	struct virtqueue vqs[VIRTIO_MAX_QUEUES];

	const struct virtio_transport_ops *transport;
	void *transport_priv;	     /* the front end (PCI, MMIO) */
	struct virtio_transport *vt; /* the lifecycle core under it (virtio/transport.h) */
};

static inline bool virtio_has_feature(const struct virtio_dev *d, unsigned int bit)
{
	return (d->guest_features >> bit) & 1;
}

/*
 * Interrupts a device decides on while holding its own lock and raises after dropping it, so
 * the transport's locks are never taken inside the device's.
 */
struct virtio_irqs {
	uint64_t queues;  /* bit q: interrupt for queue q */
	bool needs_reset; /* the device broke: DEVICE_NEEDS_RESET */
};

/* Under the device lock, after pushing used buffers on q: unless the driver suppressed it. */
static inline void virtio_irqs_queue(struct virtio_dev *d, struct virtio_irqs *p, uint16_t q)
{
	if (virtq_should_notify(&d->vqs[q]))
		p->queues |= 1ULL << q;
}

/* Takes what *pending collected (clearing it); call with the device lock held. */
static inline struct virtio_irqs virtio_irqs_take(struct virtio_irqs *pending)
{
	struct virtio_irqs p = *pending;

	*pending = (struct virtio_irqs){0};
	return p;
}

/* After the device lock is dropped: raises what virtio_irqs_take returned. */
static inline void virtio_irqs_raise(struct virtio_dev *d, struct virtio_irqs p)
{
	if (!d->transport)
		return;
	if (p.needs_reset)
		d->transport->needs_reset(d);
	for (uint16_t q = 0; p.queues; q++, p.queues >>= 1)
		if (p.queues & 1)
			d->transport->signal_queue(d, q);
}

/* After pushing used buffers on q: interrupt the driver unless it asked not to be. */
static inline void virtio_dev_notify(struct virtio_dev *d, uint16_t q)
{
	if (virtq_should_notify(&d->vqs[q]))
		d->transport->signal_queue(d, q);
}

#endif
