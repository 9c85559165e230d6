#include "virtio/mmio.h"

#include <errno.h>
#include <linux/virtio_mmio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MMIO_MAGIC 0x74726976 /* "virt" */
#define MMIO_VERSION 2	      /* the modern layout; legacy (1) is not offered */

/* ---- interrupts ---- */

static void pulse_irqfd(struct virtio_mmio *vm)
{
	uint64_t one = 1;

	if (write(vm->irq_fd, &one, sizeof(one)) != sizeof(one))
		vt_count_error(&vm->core);
}

/* A new cause raises the line; with causes already pending it is up, or the resample will be. */
static void raise_causes(struct virtio_mmio *vm, uint32_t bits)
{
	uint32_t old;

	pthread_mutex_lock(&vm->irq_lock);
	old = vm->interrupt_status;
	vm->interrupt_status |= bits;
	pthread_mutex_unlock(&vm->irq_lock);
	if (!old)
		pulse_irqfd(vm);
}

/* Event loop: the guest EOId the level interrupt and KVM lowered the line. */
static void on_resample(void *opaque, uint32_t events)
{
	struct virtio_mmio *vm = opaque;
	bool pending;
	uint64_t v;

	(void)events;
	if (read(vm->resample.fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&vm->irq_lock);
	pending = vm->interrupt_status != 0;
	pthread_mutex_unlock(&vm->irq_lock);
	if (pending)
		pulse_irqfd(vm);
}

static void signal_queue(struct virtio_dev *d, uint16_t q)
{
	(void)q;
	raise_causes(d->transport_priv, VIRTIO_MMIO_INT_VRING);
}

static void signal_config(struct virtio_dev *d)
{
	struct virtio_mmio *vm = d->transport_priv;

	vt_config_generation_bump(&vm->core);
	raise_causes(vm, VIRTIO_MMIO_INT_CONFIG);
}

/*
 * No fd interrupts the driver directly: every interrupt must also set InterruptStatus, so a
 * vhost back end signals its own eventfd and the device calls signal_queue.
 */
static int call_fd(struct virtio_dev *d, uint16_t q)
{
	(void)d;
	(void)q;
	return -1;
}

static const struct virtio_transport_ops vmmio_transport_ops = {
    .signal_queue = signal_queue,
    .signal_config = signal_config,
    .needs_reset = vt_op_needs_reset,
    .kick_fd = vt_op_kick_fd,
    .poll_kicks = vt_op_poll_kicks,
    .call_fd = call_fd,
};

/* ---- the lifecycle's front-end part ---- */

static void fe_reset(void *fe)
{
	struct virtio_mmio *vm = fe;

	pthread_mutex_lock(&vm->irq_lock);
	vm->interrupt_status = 0;
	pthread_mutex_unlock(&vm->irq_lock);
}

static void fe_config_changed(void *fe)
{
	struct virtio_mmio *vm = fe;

	signal_config(vm->dev);
}

static const struct vt_frontend_ops vmmio_frontend_ops = {
    .reset = fe_reset,
    .config_changed = fe_config_changed,
};

/* ---- registers ---- */

/* The registers the core owns, by offset; -1 for the rest. */
static int core_reg(uint64_t off)
{
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return VT_DEVICE_FEATURES;
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		return VT_DEVICE_FEATURES_SEL;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		return VT_DRIVER_FEATURES;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		return VT_DRIVER_FEATURES_SEL;
	case VIRTIO_MMIO_QUEUE_SEL:
		return VT_QUEUE_SEL;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return VT_QUEUE_SIZE_MAX;
	case VIRTIO_MMIO_QUEUE_NUM:
		return VT_QUEUE_SIZE;
	case VIRTIO_MMIO_QUEUE_READY:
		return VT_QUEUE_ENABLE;
	case VIRTIO_MMIO_STATUS:
		return VT_STATUS;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		return VT_QUEUE_DESC_LO;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		return VT_QUEUE_DESC_HI;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
		return VT_QUEUE_AVAIL_LO;
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		return VT_QUEUE_AVAIL_HI;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
		return VT_QUEUE_USED_LO;
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		return VT_QUEUE_USED_HI;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return VT_CONFIG_GENERATION;
	default:
		return -1;
	}
}

/* Registers a driver only writes read as 0 (§4.2.2 leaves them undefined). */
static bool write_only(uint64_t off)
{
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
	case VIRTIO_MMIO_DRIVER_FEATURES:
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
	case VIRTIO_MMIO_QUEUE_SEL:
	case VIRTIO_MMIO_QUEUE_NUM:
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		return true;
	default:
		return false;
	}
}

static uint32_t reg_read(struct virtio_mmio *vm, uint64_t off)
{
	int reg = core_reg(off);
	uint32_t v;

	if (reg >= 0)
		return write_only(off) ? 0 : vt_read(&vm->core, (enum vt_reg)reg);
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return MMIO_VERSION;
	case VIRTIO_MMIO_DEVICE_ID:
		return vm->dev->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		pthread_mutex_lock(&vm->irq_lock);
		v = vm->interrupt_status;
		pthread_mutex_unlock(&vm->irq_lock);
		return v;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		return 0xffffffff; /* no shared memory region: length all ones */
	default:
		return 0;
	}
}

static void reg_write(struct virtio_mmio *vm, uint64_t off, uint32_t v)
{
	int reg = core_reg(off);

	if (reg >= 0) {
		vt_write(&vm->core, (enum vt_reg)reg, v);
		return;
	}
	switch (off) {
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		vt_kick(&vm->core, v);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		/* The line drops at EOI (resample); an unacknowledged cause raises it again. */
		pthread_mutex_lock(&vm->irq_lock);
		vm->interrupt_status &= ~v;
		pthread_mutex_unlock(&vm->irq_lock);
		break;
	case VIRTIO_MMIO_SHM_SEL:
		break;
	default:
		vt_count_error(&vm->core); /* read-only, legacy-only or unknown */
		break;
	}
}

static uint32_t load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void virtio_mmio_io(void *opaque, uint64_t off, uint8_t *data, unsigned int size, bool is_write)
{
	struct virtio_mmio *vm = opaque;
	uint32_t v;

	if (off >= VIRTIO_MMIO_CONFIG) {
		vt_config_access(&vm->core, off - VIRTIO_MMIO_CONFIG, data, size, is_write);
		return;
	}
	/* Control registers are 32 bits wide and aligned (§4.2.2.2); anything else is ignored. */
	if (size != 4 || (off & 3)) {
		vt_count_error(&vm->core);
		if (!is_write)
			memset(data, 0, size);
		return;
	}
	if (is_write) {
		reg_write(vm, off, load_le32(data));
		return;
	}
	v = reg_read(vm, off);
	for (unsigned int i = 0; i < 4; i++)
		data[i] = (uint8_t)(v >> (8 * i));
}

/* ---- kicks ---- */

static int bind_kicks(struct virtio_mmio *vm, bool assign, struct kerr *err)
{
	uint64_t addr = vm->base + VIRTIO_MMIO_QUEUE_NOTIFY;

	/* Marked first: a bind that fails half-way is undone whole by destroy. */
	vm->kicks_bound = assign;
	for (uint16_t q = 0; q < vm->dev->num_queues; q++)
		if (vm->plat.ioeventfd(vm->plat.opaque, vt_kick_fd(&vm->core, q), addr, q, assign,
				       err))
			return -1;
	return 0;
}

int virtio_mmio_cmdline_append(const struct virtio_mmio *vm, char *cmdline, size_t cap)
{
	size_t len = strnlen(cmdline, cap);
	int n;

	if (len == cap)
		return -1;
	n = snprintf(cmdline + len, cap - len, "%svirtio_mmio.device=%lluK@0x%llx:%u",
		     len ? " " : "", (unsigned long long)(VIRTIO_MMIO_WINDOW >> 10),
		     (unsigned long long)vm->base, vm->gsi);
	if (n < 0 || (size_t)n >= cap - len) {
		cmdline[len] = '\0';
		return -1;
	}
	return 0;
}

/* ---- setup ---- */

static int setup_irq(struct virtio_mmio *vm, struct kerr *err)
{
	vm->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->resample =
	    (struct event_handler){eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), on_resample, vm};
	if (vm->irq_fd < 0 || vm->resample.fd < 0)
		return kerr_set(err, "eventfd: %s", strerror(errno));
	if (event_loop_add(vm->core.loop, &vm->resample, EPOLLIN, err) ||
	    vm->plat.irqfd(vm->plat.opaque, vm->irq_fd, vm->resample.fd, vm->gsi, true, err))
		return -1;
	vm->irqfd_on = true;
	return 0;
}

int virtio_mmio_create(struct virtio_mmio **out, struct virtio_dev *dev,
		       const struct virtio_mmio_platform *plat, uint64_t base, uint32_t gsi,
		       struct kerr *err)
{
	struct virtio_mmio *vm;

	if (dev->config_len > VIRTIO_MMIO_WINDOW - VIRTIO_MMIO_CONFIG)
		return kerr_set(err, "%s: config space of %u bytes", dev->name, dev->config_len);
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return kerr_set(err, "out of memory for %s", dev->name);
	if (vt_init(&vm->core, dev, plat->loop, &vmmio_frontend_ops, vm, err)) {
		free(vm);
		return -1;
	}
	vm->dev = dev;
	vm->plat = *plat;
	vm->base = base;
	vm->gsi = gsi;
	vm->irq_fd = vm->resample.fd = -1;
	pthread_mutex_init(&vm->irq_lock, NULL);
	dev->transport = &vmmio_transport_ops;
	dev->transport_priv = vm;
	if (bind_kicks(vm, true, err) || setup_irq(vm, err)) {
		virtio_mmio_destroy(vm);
		return -1;
	}
	*out = vm;
	return 0;
}

void virtio_mmio_destroy(struct virtio_mmio *vm)
{
	if (!vm)
		return;
	if (vm->kicks_bound)
		bind_kicks(vm, false, NULL);
	if (vm->irqfd_on)
		vm->plat.irqfd(vm->plat.opaque, vm->irq_fd, vm->resample.fd, vm->gsi, false, NULL);
	if (vm->resample.fd >= 0) {
		event_loop_del(vm->core.loop, &vm->resample);
		close(vm->resample.fd);
	}
	if (vm->irq_fd >= 0)
		close(vm->irq_fd);
	vt_destroy(&vm->core);
	pthread_mutex_destroy(&vm->irq_lock);
	free(vm);
}
