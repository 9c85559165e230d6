/*
 * The device lifecycle every virtio transport shares (VIRTIO 1.2 §2.1, §3.1): device status,
 * feature negotiation, queue configuration and reset. virtio-pci and virtio-mmio are register
 * front ends on it: they decode their registers into vt_read/vt_write and keep only what is
 * theirs (MSI-X vectors and the ISR on PCI, InterruptStatus on MMIO).
 *
 * Rules it enforces, whatever a driver writes, in any order, from any vCPU:
 * - status bits are only added until a reset; a write that clears one is ignored;
 * - FEATURES_OK sticks only for a subset of the offered features with VERSION_1 (and what the
 *   device's validate_features accepts); the features are then frozen until the next reset;
 * - DRIVER_OK activates the device at most once per reset, and only after FEATURES_OK;
 * - a queue's size is a power of two no larger than the device's maximum, its rings lie in
 *   guest RAM (virtq_setup), and its configuration is frozen while it is enabled and after
 *   DRIVER_OK;
 * - reset is one step from the driver's view: from the write of 0 until the device has really
 *   stopped, device_status reads back its old (non-zero) value and every write is ignored.
 *
 * Threads and locks. vCPU threads read and write registers; the event-loop thread owns the
 * device (its activate, reset and queue_notify run there, never two at once). t->lock guards
 * every field of struct virtio_transport. It is a leaf: nothing else is taken while it is
 * held, and neither the device, the front end nor the event loop is called under it.
 */
#ifndef KESTREL_VIRTIO_TRANSPORT_H
#define KESTREL_VIRTIO_TRANSPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/device.h"
#include "vmm/event_loop.h"

/* The registers every transport has, in transport-neutral terms (32 bits each). */
enum vt_reg {
	VT_DEVICE_FEATURES_SEL,
	VT_DEVICE_FEATURES, /* read-only: 32 offered bits chosen by the select */
	VT_DRIVER_FEATURES_SEL,
	VT_DRIVER_FEATURES,
	VT_NUM_QUEUES, /* read-only */
	VT_STATUS,
	VT_CONFIG_GENERATION, /* read-only */
	VT_QUEUE_SEL,
	VT_QUEUE_SIZE_MAX, /* read-only */
	VT_QUEUE_SIZE,
	VT_QUEUE_ENABLE,
	VT_QUEUE_DESC_LO,
	VT_QUEUE_DESC_HI,
	VT_QUEUE_AVAIL_LO,
	VT_QUEUE_AVAIL_HI,
	VT_QUEUE_USED_LO,
	VT_QUEUE_USED_HI,
};

/* What a front end adds to the lifecycle. Called with no lock held. */
struct vt_frontend_ops {
	/*
	 * A reset finished (on the event-loop thread, after the device stopped): clear the
	 * front end's own registers and drop any interrupt it still asserts.
	 */
	void (*reset)(void *fe);
	/* The device needs the driver's attention (NEEDS_RESET): raise a config interrupt. */
	void (*config_changed)(void *fe);
};

struct vt_queue {
	uint16_t size; /* power of two in 1..dev->queue_max_size */
	bool size_bad; /* the driver wrote a size the device cannot take: enabling fails */
	bool enabled;  /* the virtqueue was set up from the fields below */
	uint64_t desc, avail, used;
};

/* A queue's kick eventfd: bound by the front end to its notify address (an ioeventfd). */
struct vt_kick {
	struct event_handler h;	 /* on loop while polled */
	struct event_loop *loop; /* the transport's, or the device's queue_loop */
	bool polled;		 /* false while a vhost back end reads it instead */
	struct virtio_transport *t;
	uint16_t index;
};

struct virtio_transport {
	struct virtio_dev *dev;
	struct event_loop *loop;
	const struct vt_frontend_ops *fe_ops;
	void *fe;

	pthread_mutex_t lock; /* leaf lock: guards everything below */
	uint8_t status;
	bool resetting;	       /* a reset was requested and has not finished */
	bool activate_pending; /* DRIVER_OK accepted, activate not yet run on the event loop */
	bool active;	       /* the device's activate succeeded since the last reset */
	uint32_t device_features_sel, driver_features_sel;
	uint64_t driver_features; /* what the driver wrote; dev->guest_features from FEATURES_OK */
	uint16_t queue_sel;
	uint8_t config_generation;
	struct vt_queue queues[VIRTIO_MAX_QUEUES];
	uint64_t errors; /* guest mistakes and platform failures, core and front end; atomic */

	/* Not under the lock: made at init, then only the event loop and vhost touch them. */
	struct vt_kick kicks[VIRTIO_MAX_QUEUES];
};

/*
 * dev->num_queues must be in 1..VIRTIO_MAX_QUEUES and queue_max_size a power of two. Makes one
 * kick eventfd per queue, polled on the event loop: a kick reaches the device's queue_notify
 * only while vt_queue_live.
 */
int vt_init(struct virtio_transport *t, struct virtio_dev *dev, struct event_loop *loop,
	    const struct vt_frontend_ops *fe_ops, void *fe, struct kerr *err);
void vt_destroy(struct virtio_transport *t);

/* A driver's register access. vt_write may run the device's reset or activate (and waits for
 * it on the event loop), so front ends call it with none of their own locks held. */
uint32_t vt_read(struct virtio_transport *t, enum vt_reg reg);
void vt_write(struct virtio_transport *t, enum vt_reg reg, uint32_t value);

/* The device-specific configuration space at any offset and width; outside it reads 0. */
void vt_config_access(struct virtio_transport *t, uint64_t off, uint8_t *data, unsigned int size,
		      bool is_write);

/* The device (any thread) found the guest broke it: set NEEDS_RESET, tell the driver. */
void vt_needs_reset(struct virtio_transport *t);
/* Device configuration changed: bump the generation (the front end raises the interrupt). */
void vt_config_generation_bump(struct virtio_transport *t);
/* A kick on queue q may reach the device: activated, not broken or resetting, q enabled. */
bool vt_queue_live(struct virtio_transport *t, uint16_t q);
/* The kick eventfd of queue q (-1 past the last queue), for the front end's ioeventfd. */
int vt_kick_fd(struct virtio_transport *t, uint16_t q);
/* Signals queue q's kick eventfd: a notify write the ioeventfd did not catch. */
void vt_kick(struct virtio_transport *t, uint32_t q);
/* Whether the event loop reads q's kicks (false: a vhost back end does). */
void vt_poll_kicks(struct virtio_transport *t, uint16_t q, bool poll);

/* The same three as struct virtio_transport_ops entries, for every front end's table. */
void vt_op_needs_reset(struct virtio_dev *d);
int vt_op_kick_fd(struct virtio_dev *d, uint16_t q);
void vt_op_poll_kicks(struct virtio_dev *d, uint16_t q, bool poll);

/* True from an accepted DRIVER_OK until the next reset. */
bool vt_driver_ok(struct virtio_transport *t);
/* One error counter per device, whichever layer saw the error (no lock: callable anywhere). */
void vt_count_error(struct virtio_transport *t);
uint64_t vt_errors(struct virtio_transport *t);

#endif
