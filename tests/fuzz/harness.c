/*
 * libFuzzer entry points shared by every target (see harness.h for the input format). Each
 * input gets a fresh event loop, device and transport (bus.h: virtio-pci on a PCI bus, or
 * virtio-mmio), and leaves nothing behind: the
 * fuzzer runs millions of inputs in one process, so a leaked fd or byte is a failure.
 *
 * Besides the sanitizers, the harness checks the device lifecycle every transport must
 * guarantee (VIRTIO 1.2 §2.1, §3.1; issue 7) by wrapping the device's ops: activate runs once
 * per reset; while the device is live its queues and features do not change; no queue is
 * larger than the device's maximum; and the guest cannot make the VMM allocate without bound
 * between two event-loop passes (beyond what activate sizes to the enabled queues).
 */
#include "tests/fuzz/harness.h"

#include <sanitizer/allocator_interface.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/bus.h"

#define MAX_OPS 65536 /* per input, repeats included: bounds the time one input takes */
#define DRAIN_PASSES 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct guest_mem gm;
static const struct fuzz_bus *bus;

_Noreturn void fuzz_die(const char *what)
{
	fprintf(stderr, "fuzz harness: %s\n", what);
	abort();
}

/* ---- lifecycle oracle: wraps the device's ops ---- */

struct vq_snap {
	uint16_t size;
	bool ready;
	uint64_t desc, avail, used;
};

static const struct virtio_dev_ops *real_ops;
static bool oracles = true; /* FUZZ_NO_ORACLES=1: only the sanitizers judge (see README) */
static bool live;
static uint64_t live_features;
/* What the live activation allocated, if no event-loop pass has counted it yet; the device
 * frees it at reset. */
static size_t alloc_credit;
static struct vq_snap live_vqs[VIRTIO_MAX_QUEUES];

static struct vq_snap snap(const struct virtqueue *vq)
{
	return (struct vq_snap){vq->size, vq->ready, vq->desc_gpa, vq->avail_gpa, vq->used_gpa};
}

static bool same(const struct vq_snap *a, const struct vq_snap *b)
{
	return a->size == b->size && a->ready == b->ready && a->desc == b->desc &&
	       a->avail == b->avail && a->used == b->used;
}

static void check_lifecycle(const struct virtio_dev *d)
{
	if (!oracles)
		return;
	for (uint16_t q = 0; q < d->num_queues; q++) {
		struct vq_snap s = snap(&d->vqs[q]);
		if (s.ready && s.size > d->queue_max_size)
			fuzz_die("a queue is larger than the device's maximum");
		if (live && !same(&s, &live_vqs[q]))
			fuzz_die("a queue was set up again while the device was live");
	}
	if (live && d->guest_features != live_features)
		fuzz_die("features changed while the device was live");
}

static int wrap_activate(struct virtio_dev *d)
{
	if (live && oracles)
		fuzz_die("activate ran twice without a reset");
	check_lifecycle(d);
	live = true;
	live_features = d->guest_features;
	memset(live_vqs, 0, sizeof(live_vqs));
	for (uint16_t q = 0; q < d->num_queues; q++)
		live_vqs[q] = snap(&d->vqs[q]);
	size_t before = __sanitizer_get_current_allocated_bytes(), entries = 0;
	if (real_ops->activate(d)) {
		live = false;
		return -1;
	}
	/* A device sizes its per-queue state to the queues the driver enabled (Linux's blk queue
	 * of 256 entries needs ~1 MiB of iovecs): bounded by the queue sizes, freed at reset. */
	size_t after = __sanitizer_get_current_allocated_bytes();
	for (uint16_t q = 0; q < d->num_queues; q++)
		entries += d->vqs[q].ready ? d->vqs[q].size : 0;
	if (after > before) {
		if (oracles &&
		    after - before > entries * FUZZ_ACTIVATE_PER_ENTRY + FUZZ_ALLOC_LIMIT)
			fuzz_die("activate allocated more than its queues' sizes bound");
		alloc_credit = after - before;
	}
	return 0;
}

static void wrap_reset(struct virtio_dev *d)
{
	live = false;
	alloc_credit = 0;
	real_ops->reset(d);
}

static void wrap_queue_notify(struct virtio_dev *d, uint16_t q)
{
	if (q >= d->num_queues)
		fuzz_die("notify for a queue the device does not have");
	check_lifecycle(d);
	real_ops->queue_notify(d, q);
}

static struct virtio_dev_ops wrapped_ops;

static void wrap_ops(struct virtio_dev *d)
{
	real_ops = d->ops;
	wrapped_ops = *d->ops;
	wrapped_ops.activate = wrap_activate;
	wrapped_ops.reset = wrap_reset;
	wrapped_ops.queue_notify = wrap_queue_notify;
	d->ops = &wrapped_ops;
	live = false;
}

/* ---- one input ---- */

struct rig {
	struct event_loop loop;
	const struct fuzz_bus *bus;
	void *tp; /* the bus's state: the device's transport */
	struct virtio_dev *dev;
	size_t alloc_base; /* heap in use at the last event-loop pass */
};

struct reader {
	const uint8_t *p;
	size_t n;
};

static bool take(struct reader *r, void *out, size_t len)
{
	if (r->n < len)
		return false;
	memcpy(out, r->p, len);
	r->p += len;
	r->n -= len;
	return true;
}

/* Little-endian unsigned of len bytes (the fuzzer's bytes, host order does not matter). */
static bool take_le(struct reader *r, size_t len, uint64_t *v)
{
	uint8_t b[8];

	if (!take(r, b, len))
		return false;
	*v = 0;
	for (size_t i = 0; i < len; i++)
		*v |= (uint64_t)b[i] << (8 * i);
	return true;
}

static void setup_queue(struct rig *g, struct reader *r)
{
	uint64_t q, size, desc, avail, used, enable;

	if (!take_le(r, 2, &q) || !take_le(r, 2, &size) || !take_le(r, 4, &desc) ||
	    !take_le(r, 4, &avail) || !take_le(r, 4, &used) || !take_le(r, 1, &enable))
		return;
	g->bus->queue(g->tp, (uint16_t)q, (uint16_t)size, (uint32_t)desc, (uint32_t)avail,
		      (uint32_t)used, enable & 1);
}

/* The allocation oracle measures from here: the heap in use now, no activate credit. */
static void rebase_allocs(struct rig *g)
{
	g->alloc_base = __sanitizer_get_current_allocated_bytes();
	alloc_credit = 0;
}

static void step(struct rig *g)
{
	if (event_loop_run_once(&g->loop, 0) < 0)
		fuzz_die("epoll_wait failed");
	if (fuzz_target.step)
		fuzz_target.step();
	rebase_allocs(g);
}

/* Decodes and runs one op; false when the input ends inside it. */
static bool run_op(struct rig *g, struct reader *r)
{
	uint64_t op, off, w, val, len;
	uint8_t buf[8] = {0};

	if (!take_le(r, 1, &op))
		return false;
	switch (op % FUZZ_OP__COUNT) {
	case FUZZ_CFG_READ:
		if (!take_le(r, 2, &off) || !take_le(r, 1, &w))
			return false;
		g->bus->cfg_io(g->tp, (uint16_t)off, buf, FUZZ_WIDTH(w), false);
		return true;
	case FUZZ_CFG_WRITE:
		if (!take_le(r, 2, &off) || !take_le(r, 1, &w) || !take(r, buf, 4))
			return false;
		g->bus->cfg_io(g->tp, (uint16_t)off, buf, FUZZ_WIDTH(w), true);
		return true;
	case FUZZ_BAR_READ:
		if (!take_le(r, 2, &off) || !take_le(r, 1, &w))
			return false;
		g->bus->win_io(g->tp, off, buf, FUZZ_WIDTH(w), false);
		return true;
	case FUZZ_BAR_WRITE:
		if (!take_le(r, 2, &off) || !take_le(r, 1, &w) || !take(r, buf, 8))
			return false;
		g->bus->win_io(g->tp, off, buf, FUZZ_WIDTH(w), true);
		return true;
	case FUZZ_STEP:
		step(g);
		return true;
	case FUZZ_MEM_WRITE:
		if (!take_le(r, 4, &off) || !take_le(r, 2, &len))
			return false;
		off %= FUZZ_RAM_SIZE;
		len = len < FUZZ_RAM_SIZE - off ? len : FUZZ_RAM_SIZE - off;
		return take(r, guest_mem_ptr(&gm, off, len), len);
	case FUZZ_STATUS:
		if (!take_le(r, 1, &val))
			return false;
		g->bus->status(g->tp, (uint8_t)val);
		return true;
	case FUZZ_QUEUE:
		setup_queue(g, r);
		return true;
	case FUZZ_KICK:
		if (!take_le(r, 2, &val))
			return false;
		g->bus->kick(g->tp, (uint16_t)val);
		return true;
	case FUZZ_FEATURES:
		if (!take_le(r, 8, &val))
			return false;
		g->bus->features(g->tp, val);
		return true;
	case FUZZ_TARGET:
		if (!take_le(r, 1, &op) || !take_le(r, 2, &len))
			return false;
		len = len < r->n ? len : r->n;
		if (fuzz_target.op)
			fuzz_target.op(g->dev, (uint8_t)op, r->p, len);
		r->p += len;
		r->n -= len;
		return true;
	default: /* FUZZ_REPEAT is decoded by run_ops */
		return take_le(r, 2, &val);
	}
}

static void check_allocs(struct rig *g)
{
	if (oracles && __sanitizer_get_current_allocated_bytes() >
			   g->alloc_base + FUZZ_ALLOC_LIMIT + alloc_credit)
		fuzz_die("the guest made the VMM allocate without bound (no event-loop pass)");
}

static void run_ops(struct rig *g, struct reader *r)
{
	struct reader prev = *r;
	unsigned int ops = 0;
	uint64_t op, n;

	while (r->n && ops < MAX_OPS) {
		struct reader here = *r;
		if (r->p[0] % FUZZ_OP__COUNT == FUZZ_REPEAT) {
			if (!take_le(r, 1, &op) || !take_le(r, 2, &n))
				return;
			n = n < FUZZ_MAX_REPEAT ? n : FUZZ_MAX_REPEAT;
			for (uint64_t i = 0; i < n && ops < MAX_OPS; i++, ops++) {
				struct reader again = prev;
				run_op(g, &again);
				check_allocs(g);
				check_lifecycle(g->dev);
			}
			continue;
		}
		if (!run_op(g, r))
			return;
		ops++;
		prev = here;
		check_allocs(g);
		check_lifecycle(g->dev);
	}
}

static int rig_up(struct rig *g)
{
	struct kerr err;

	if (event_loop_init(&g->loop, &err))
		fuzz_die(err.msg);
	g->dev = fuzz_target.create(&gm, &g->loop);
	if (!g->dev)
		return -1;
	wrap_ops(g->dev);
	g->tp = g->bus->up(g->dev, &g->loop);
	return 0;
}

/* FUZZ_TRACE=1: where an input got to, for whoever writes seeds. */
static void trace(const struct rig *g)
{
	const struct virtio_dev *d = g->dev;

	if (!getenv("FUZZ_TRACE") || !d)
		return;
	fprintf(stderr, "status 0x%02x errors %llu live %d features 0x%llx\n",
		vt_read(g->bus->core(g->tp), VT_STATUS),
		(unsigned long long)vt_errors(g->bus->core(g->tp)), live,
		(unsigned long long)d->guest_features);
	for (uint16_t q = 0; q < d->num_queues; q++)
		if (d->vqs[q].ready)
			fprintf(stderr, "  q%u size %u used %u%s\n", q, d->vqs[q].size,
				d->vqs[q].used_idx, d->vqs[q].broken ? " broken" : "");
}

static void rig_down(struct rig *g)
{
	if (g->tp)
		trace(g);
	/* Posted work must run, or its allocations leak. */
	for (int i = 0; i < DRAIN_PASSES && event_loop_run_once(&g->loop, 0) > 0; i++)
		if (fuzz_target.step)
			fuzz_target.step();
	if (g->tp)
		g->bus->down(g->tp);
	if (g->dev)
		fuzz_target.destroy(g->dev);
	event_loop_destroy(&g->loop);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct guest_mem_region layout = {.gpa = 0, .size = FUZZ_RAM_SIZE};
	struct kerr err;

	(void)argc, (void)argv;
	oracles = !getenv("FUZZ_NO_ORACLES");
	/* FUZZ_TRANSPORT=mmio|pci puts any target's device on that transport (default: its own). */
	bus = fuzz_target.mmio ? &fuzz_bus_mmio : &fuzz_bus_pci;
	if (getenv("FUZZ_TRANSPORT"))
		bus = strcmp(getenv("FUZZ_TRANSPORT"), "mmio") ? &fuzz_bus_pci : &fuzz_bus_mmio;
	if (guest_mem_map(&gm, &layout, 1, &err))
		fuzz_die(err.msg);
	if (fuzz_target.init)
		fuzz_target.init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rig g = {.bus = bus};
	struct reader r = {data, size};
	size_t img = size < FUZZ_IMG_SIZE ? size : FUZZ_IMG_SIZE;

	memset(gm.regions[0].host, 0, FUZZ_RAM_SIZE);
	take(&r, gm.regions[0].host, img);
	if (rig_up(&g) == 0) {
		rebase_allocs(&g);
		run_ops(&g, &r);
	}
	rig_down(&g);
	return 0;
}
