/*
 * The virtio-mmio side of the harness: one window, driven through virtio_mmio_io as the io_bus
 * would (offsets inside the window, any width: the transport must refuse what it cannot take).
 */
#include <linux/virtio_mmio.h>
#include <stdlib.h>

#include "tests/fuzz/bus.h"
#include "tests/fuzz/harness.h"
#include "virtio/mmio.h"

#define BASE 0xe0200000ull
#define GSI 5

static int fake_ioeventfd(void *opaque, int efd, uint64_t addr, uint32_t datamatch, bool assign,
			  struct kerr *err)
{
	(void)opaque, (void)efd, (void)addr, (void)datamatch, (void)assign, (void)err;
	return 0;
}

/* KVM would consume the irqfd's counter; nothing reads it here, which is harmless. */
static int fake_irqfd(void *opaque, int efd, int resample_fd, uint32_t gsi, bool assign,
		      struct kerr *err)
{
	(void)opaque, (void)efd, (void)resample_fd, (void)gsi, (void)assign, (void)err;
	return 0;
}

static void *up(struct virtio_dev *d, struct event_loop *loop)
{
	struct virtio_mmio_platform plat = {
	    .ioeventfd = fake_ioeventfd,
	    .irqfd = fake_irqfd,
	    .loop = loop,
	};
	struct virtio_mmio *vm;
	struct kerr err;

	if (virtio_mmio_create(&vm, d, &plat, BASE, GSI, &err))
		fuzz_die(err.msg);
	return vm;
}

static void down(void *s)
{
	virtio_mmio_destroy(s);
}

static struct virtio_transport *core(void *s)
{
	return &((struct virtio_mmio *)s)->core;
}

static void win_io(void *s, uint64_t off, uint8_t *buf, unsigned int width, bool is_write)
{
	/* The io_bus hands over only accesses that lie inside the window. */
	off %= VIRTIO_MMIO_WINDOW;
	if (off + width > VIRTIO_MMIO_WINDOW)
		off = VIRTIO_MMIO_WINDOW - width;
	virtio_mmio_io(s, off, buf, width, is_write);
}

static void cfg_io(void *s, uint16_t off, uint8_t *buf, unsigned int width, bool is_write)
{
	win_io(s, off, buf, width, is_write);
}

static void reg_write(void *s, uint32_t off, uint32_t val)
{
	uint8_t b[4] = {(uint8_t)val, (uint8_t)(val >> 8), (uint8_t)(val >> 16),
			(uint8_t)(val >> 24)};

	virtio_mmio_io(s, off, b, 4, true);
}

static void status(void *s, uint8_t val)
{
	reg_write(s, VIRTIO_MMIO_STATUS, val);
}

static void features(void *s, uint64_t val)
{
	reg_write(s, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	reg_write(s, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)val);
	reg_write(s, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	reg_write(s, VIRTIO_MMIO_DRIVER_FEATURES, val >> 32);
}

static void queue(void *s, uint16_t q, uint16_t size, uint32_t desc, uint32_t avail, uint32_t used,
		  bool enable)
{
	reg_write(s, VIRTIO_MMIO_QUEUE_SEL, q);
	reg_write(s, VIRTIO_MMIO_QUEUE_NUM, size);
	reg_write(s, VIRTIO_MMIO_QUEUE_DESC_LOW, desc);
	reg_write(s, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	reg_write(s, VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail);
	reg_write(s, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
	reg_write(s, VIRTIO_MMIO_QUEUE_USED_LOW, used);
	reg_write(s, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	if (enable)
		reg_write(s, VIRTIO_MMIO_QUEUE_READY, 1);
}

static void kick(void *s, uint16_t q)
{
	reg_write(s, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

const struct fuzz_bus fuzz_bus_mmio = {
    .up = up,
    .down = down,
    .core = core,
    .cfg_io = cfg_io,
    .win_io = win_io,
    .status = status,
    .features = features,
    .queue = queue,
    .kick = kick,
};
