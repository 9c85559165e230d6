/*
 * The split virtqueue (VIRTIO 1.2 §2.7), device side: pops descriptor chains the driver made
 * available, pushes them back as used, and decides when to interrupt the driver and whether
 * the driver should kick us. Knows nothing about the transport, the device type or x86; every
 * guest address goes through guest_mem_ptr.
 *
 * Threads: a queue is owned by exactly one thread at a time, the device's worker (the event
 * loop or the device's own thread). The transport may call virtq_setup() and virtq_reset()
 * only while the queue is not enabled or the device is not DRIVER_OK, i.e. before the device
 * is activated and after it has been stopped; the hand-off to and from the worker must go
 * through something that orders memory (thread start/join, a mutex, an eventfd or epoll
 * registration). While the queue is ready, only the owner touches it, counters included;
 * other threads that want the counters ask the owner. vhost-net takes the ring addresses and
 * last_avail_idx from here at activation and the queue is then left alone until reset.
 *
 * The guest writes the rings concurrently from its vCPUs: every value read from guest memory
 * is read once, ordered with acquire/release atomics and fences as the spec requires, and
 * validated before use.
 */
#ifndef KESTREL_VIRTIO_QUEUE_H
#define KESTREL_VIRTIO_QUEUE_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/guest_mem.h"

/* Largest queue size we offer; also the most segments one chain may carry (direct plus
 * indirect), the same cap QEMU applies. */
#define VIRTQ_MAX_SIZE 1024
#define VIRTQ_MAX_SEGS 1024

/* Why a queue was set up wrongly or a chain was rejected; indexes vq->errors[]. */
enum virtq_error {
	VIRTQ_OK = 0,
	VIRTQ_ERR_SETUP,	 /* bad size, misaligned ring or ring not in RAM */
	VIRTQ_ERR_AVAIL_IDX,	 /* avail->idx moved more than the queue size ahead */
	VIRTQ_ERR_HEAD,		 /* avail ring entry >= queue size */
	VIRTQ_ERR_NEXT,		 /* next index >= queue or indirect table size */
	VIRTQ_ERR_LOOP,		 /* more descriptors than the queue / table holds */
	VIRTQ_ERR_ADDR,		 /* buffer not inside one RAM region */
	VIRTQ_ERR_ORDER,	 /* readable descriptor after a writable one */
	VIRTQ_ERR_LEN,		 /* chain longer than 2^32 - 1 bytes */
	VIRTQ_ERR_INDIRECT,	 /* indirect not negotiated, nested, with NEXT, bad table */
	VIRTQ_ERR_TOO_MANY_SEGS, /* more than VIRTQ_MAX_SEGS buffers */
	VIRTQ_ERR_PUSH,		 /* device bug: push of a bad head or with nothing in flight */
	VIRTQ_ERR__COUNT
};

/*
 * What went through a queue since kestrel started (kept across resets), for `kestrel -v`.
 * Updated by the queue's owner; kicks and interrupts that vhost handles in the kernel are not
 * seen here.
 */
struct virtq_stats {
	uint64_t kicks;		/* driver notifications that reached the device */
	uint64_t exit_kicks;	/* of all kicks, those that came as a VM exit (no ioeventfd) */
	uint64_t interrupts;	/* notifications sent to the driver */
	uint64_t batches;	/* interrupt decisions, each after one or more pushes */
	uint64_t requests;	/* chains returned as used */
	uint64_t bytes_read;	/* readable bytes of the chains popped (driver -> device) */
	uint64_t bytes_written; /* bytes written into used chains (device -> driver) */
};

struct virtqueue {
	/* Set by virtq_setup() (transport, queue not enabled); read-only while ready. */
	uint16_t size; /* power of 2, 1..VIRTQ_MAX_SIZE */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	const struct guest_mem *mem;
	/* Host views of the rings, checked once at setup; guest RAM never moves. */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	bool ready;

	/* Owned by the worker while ready. */
	uint16_t last_avail_idx; /* next avail ring entry to pop */
	uint16_t used_idx;	 /* our copy of used->idx */
	uint16_t signalled_used; /* used_idx at the last virtq_should_notify() decision */
	uint32_t unsignalled;	 /* pushes since that decision, so a 16-bit wrap can't hide them */
	uint32_t inflight;	 /* popped but not yet pushed */
	bool notify_enabled;	 /* driver kicks wanted (virtq_enable/disable_notify) */
	bool broken;		 /* the guest broke the rules: pops fail until virtq_reset() */

	enum virtq_error last_error;
	uint64_t errors[VIRTQ_ERR__COUNT];
	/* Last: virtq_reset clears everything before it and never writes it. */
	struct virtq_stats stats;
};

struct virtq_seg {
	void *addr; /* host view of the whole buffer, already bounds-checked */
	uint32_t len;
	bool writable;
};

/*
 * One popped chain. Segments are readable first (segs[0..nr_readable)), then writable; zero-
 * length descriptors are dropped. About 16 KiB: keep it in the device's state, not on a small
 * stack. The host pointers stay valid until the chain is pushed (the guest may still scribble
 * on the buffers: copy a header out before validating it, which virtq_chain_read does).
 */
struct virtq_chain {
	uint16_t head;
	uint16_t nr_segs;
	uint16_t nr_readable;
	uint32_t readable_bytes;
	uint32_t writable_bytes;
	struct virtq_seg segs[VIRTQ_MAX_SEGS];
};

/*
 * Validates and enables a queue with the ring addresses and negotiated features (the whole
 * feature word; only the ring bits are used). Fails (queue left not ready, VIRTQ_ERR_SETUP
 * counted, err filled if non-NULL) if size is not a power of 2 in 1..VIRTQ_MAX_SIZE, a ring is
 * misaligned (16/2/4 bytes), or any byte of a ring, trailing event fields included, is outside
 * guest RAM. Does not write guest memory. The transport then fails QUEUE_ENABLE / sets
 * NEEDS_RESET.
 */
int virtq_setup(struct virtqueue *vq, const struct guest_mem *mem, unsigned int size,
		uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa, uint64_t features,
		struct kerr *err);

/* Back to the state of a zeroed struct: not ready, error counters cleared (stats kept). */
void virtq_reset(struct virtqueue *vq);

/*
 * Takes the next available chain: 1 with *chain filled, 0 if the driver has made nothing new
 * available (or the queue is not ready), -1 if the guest broke the rules. On -1 the queue is
 * marked broken, the reason is in vq->last_error and counted, and every later pop returns -1
 * until virtq_reset(): a malformed chain has no trustworthy status byte to fail it through,
 * so the caller must set DEVICE_NEEDS_RESET and send a config-change interrupt (§2.1.2),
 * leaving the rest of the VM running. Requests that fail on their contents (bad header,
 * read-only disk) are not the queue's business: the device pushes them with a status.
 */
int virtq_pop(struct virtqueue *vq, struct virtq_chain *chain);

/*
 * Gives back the chain popped last, unused, so the next pop returns it again (virtio-net RX
 * popping a buffer before knowing a packet is there). Only right after a pop, once.
 */
void virtq_unpop(struct virtqueue *vq);

/*
 * Returns a chain to the driver: writes the used element, then publishes used->idx with
 * release ordering. written_len is the number of bytes the device wrote into the writable
 * segments (at most chain->writable_bytes). Returns -1 (counted as VIRTQ_ERR_PUSH, nothing
 * written) for a head >= size or when nothing is in flight. Follow with virtq_should_notify().
 */
int virtq_push(struct virtqueue *vq, uint16_t head, uint32_t written_len);

/*
 * Whether to interrupt the driver for what was pushed since the previous call: with EVENT_IDX,
 * when used->idx has crossed the driver's used_event (across 16-bit wrap); otherwise unless
 * the driver set VRING_AVAIL_F_NO_INTERRUPT. Always false if nothing was pushed since.
 */
bool virtq_should_notify(struct virtqueue *vq);

/* True if the driver has made entries available that virtq_pop has not taken yet. */
bool virtq_has_avail(struct virtqueue *vq);

/*
 * Kick suppression, the device side: disable while draining the queue, enable when it looks
 * empty. With EVENT_IDX, enabling writes avail_event = last_avail_idx (and pops keep it current
 * while enabled); without, it clears/sets VRING_USED_F_NO_NOTIFY in used->flags.
 * virtq_enable_notify() then re-checks the ring after a full fence and returns true if entries
 * arrived meanwhile (the driver may have skipped that kick): the caller must keep popping.
 *
 *	for (;;) {
 *		virtq_disable_notify(vq);
 *		while ((r = virtq_pop(vq, &c)) == 1)
 *			handle(&c);
 *		if (r < 0 || !virtq_enable_notify(vq))
 *			break;
 *	}
 */
bool virtq_enable_notify(struct virtqueue *vq);
void virtq_disable_notify(struct virtqueue *vq);

/*
 * Copy out of the readable segments / into the writable segments of a chain, starting at byte
 * offset within that side of the chain. Bounded by len and by the chain; return the bytes
 * copied (0 if offset is past the end).
 */
size_t virtq_chain_read(const struct virtq_chain *chain, size_t offset, void *dst, size_t len);
size_t virtq_chain_write(const struct virtq_chain *chain, size_t offset, const void *src,
			 size_t len);

const char *virtq_strerror(enum virtq_error e);

#endif
