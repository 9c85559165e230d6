/*
 * The shared half of every fuzz target: a hostile driver that plays a fuzzer input against a
 * real virtio device behind the real virtio-pci transport on a PCI bus, or behind virtio-mmio
 * (bus.h), with a fake platform (no KVM) and an event loop the harness steps itself. A target only
 * says which device sits behind the transport and what its back end's outside world does (tap
 * frames, socket clients).
 *
 * Input: FUZZ_IMG_SIZE bytes copied to guest RAM at address 0 (rings and buffers), then ops,
 * each an opcode byte (taken modulo FUZZ_OP__COUNT) and its little-endian arguments. A
 * truncated op ends the input. tests/fuzz/gen_corpus.py writes inputs in this format.
 */
#ifndef KESTREL_FUZZ_HARNESS_H
#define KESTREL_FUZZ_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/device.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"

#define FUZZ_RAM_SIZE (256 * 1024)
#define FUZZ_IMG_SIZE 4096
#define FUZZ_MAX_REPEAT 16384
/* Heap growth allowed between two event-loop steps: more means the guest can make the VMM
 * allocate without bound (a vCPU thread queueing work nobody runs). */
#define FUZZ_ALLOC_LIMIT (256 * 1024)
/* What activate may allocate per entry of the queues the driver enabled (blk: 254 iovecs). */
#define FUZZ_ACTIVATE_PER_ENTRY (8 * 1024)

enum fuzz_op {
	FUZZ_CFG_READ,	/* off:u16 width:u8 (virtio-mmio: its window, as FUZZ_BAR_*) */
	FUZZ_CFG_WRITE, /* off:u16 width:u8 val:u32 */
	FUZZ_BAR_READ,	/* off:u16 width:u8 */
	FUZZ_BAR_WRITE, /* off:u16 width:u8 val:u64 */
	FUZZ_STEP,	/* one non-blocking pass of the event loop */
	FUZZ_MEM_WRITE, /* gpa:u32 len:u16 bytes[len] */
	FUZZ_STATUS,	/* val:u8, written to device_status (0: reset) */
	FUZZ_QUEUE,	/* q:u16 size:u16 desc:u32 avail:u32 used:u32 enable:u8 */
	FUZZ_KICK,	/* q:u16, written to the queue's notify address */
	FUZZ_REPEAT,	/* n:u16: the previous op n more times */
	FUZZ_FEATURES,	/* val:u64, written to guest_feature (both halves) */
	FUZZ_TARGET,	/* sub:u8 len:u16 bytes[len]: the target's back-end op */
	FUZZ_OP__COUNT
};

/* Width byte to access size: 1, 2, 4 or 8 (the low two bits). */
#define FUZZ_WIDTH(b) (1u << ((b)&3u))

struct fuzz_target {
	/* Once per process (temp files, environment); may be NULL. */
	void (*init)(void);
	/* The device for one input, not yet on a transport; NULL if it cannot be built. */
	struct virtio_dev *(*create)(const struct guest_mem *mem, struct event_loop *loop);
	/* Back-end op: the outside world acts (a frame arrives, a client connects...). */
	void (*op)(struct virtio_dev *d, uint8_t sub, const uint8_t *data, size_t len);
	/* Destroys the device and anything op opened; the loop is no longer stepped. */
	void (*destroy)(struct virtio_dev *d);
	/* Behind virtio-mmio rather than virtio-pci (FUZZ_TRANSPORT=pci|mmio overrides). */
	bool mmio;
	/* Optional: a pass of the target's own loops, after each pass of the harness's. */
	void (*step)(void);
};

/* Each target file defines this one. */
extern const struct fuzz_target fuzz_target;

/* For targets: an error during set-up that is the harness's fault, not the input's. */
_Noreturn void fuzz_die(const char *what);

#endif
