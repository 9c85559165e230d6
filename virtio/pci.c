#include "virtio/pci.h"
#include "virtio/pci_irq.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* modern devices: 0x1040 + device id */
#define VIRTIO_PCI_REVISION 1

static uint32_t class_for(uint32_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET:
		return 0x020000; /* network controller */
	case VIRTIO_ID_BLOCK:
		return 0x018000; /* mass storage, other */
	case VIRTIO_ID_CONSOLE:
		return 0x078000; /* communication, other */
	default:
		return 0xff0000;
	}
}

static void do_irqs_changed(void *arg)
{
	struct virtio_pci *vp = arg;
	struct virtio_dev *d = vp->dev;

	if (!d->ops->queue_irq_changed || !vt_driver_ok(&vp->core))
		return;
	for (uint16_t q = 0; q < d->num_queues; q++)
		d->ops->queue_irq_changed(d, q);
}

static void load_le(const uint8_t *data, unsigned int size, uint64_t *v)
{
	*v = 0;
	for (unsigned int i = 0; i < size; i++)
		*v |= (uint64_t)data[i] << (8 * i);
}

static void store_le(uint8_t *data, unsigned int size, uint64_t v)
{
	for (unsigned int i = 0; i < size; i++)
		data[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the lifecycle's front-end part ---- */

static void fe_reset(void *fe)
{
	struct virtio_pci *vp = fe;

	pthread_mutex_lock(&vp->lock);
	vp->msix_config = VIRTIO_MSI_NO_VECTOR;
	for (uint16_t q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vp->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
	pthread_mutex_unlock(&vp->lock);
	vpci_isr_clear(vp);
}

static void fe_config_changed(void *fe)
{
	struct virtio_pci *vp = fe;

	vpci_signal_config(vp);
}

static const struct vt_frontend_ops vpci_frontend_ops = {
    .reset = fe_reset,
    .config_changed = fe_config_changed,
};

/* ---- common configuration ---- */

#define COMMON(field) offsetof(struct virtio_pci_common_cfg, field)

/* The common-config registers the core owns, by offset; -1 for the rest. */
static int core_reg(unsigned int off)
{
	switch (off) {
	case COMMON(device_feature_select):
		return VT_DEVICE_FEATURES_SEL;
	case COMMON(device_feature):
		return VT_DEVICE_FEATURES;
	case COMMON(guest_feature_select):
		return VT_DRIVER_FEATURES_SEL;
	case COMMON(guest_feature):
		return VT_DRIVER_FEATURES;
	case COMMON(num_queues):
		return VT_NUM_QUEUES;
	case COMMON(device_status):
		return VT_STATUS;
	case COMMON(config_generation):
		return VT_CONFIG_GENERATION;
	case COMMON(queue_select):
		return VT_QUEUE_SEL;
	case COMMON(queue_size):
		return VT_QUEUE_SIZE;
	case COMMON(queue_enable):
		return VT_QUEUE_ENABLE;
	case COMMON(queue_desc_lo):
		return VT_QUEUE_DESC_LO;
	case COMMON(queue_desc_hi):
		return VT_QUEUE_DESC_HI;
	case COMMON(queue_avail_lo):
		return VT_QUEUE_AVAIL_LO;
	case COMMON(queue_avail_hi):
		return VT_QUEUE_AVAIL_HI;
	case COMMON(queue_used_lo):
		return VT_QUEUE_USED_LO;
	case COMMON(queue_used_hi):
		return VT_QUEUE_USED_HI;
	default:
		return -1;
	}
}

static uint16_t checked_vector(struct virtio_pci *vp, uint64_t v)
{
	return v < vp->nr_vectors ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

static uint64_t common_read(struct virtio_pci *vp, unsigned int off)
{
	uint16_t q = (uint16_t)vt_read(&vp->core, VT_QUEUE_SEL);
	int reg = core_reg(off);

	if (reg >= 0)
		return vt_read(&vp->core, (enum vt_reg)reg);
	if (off == COMMON(msix_config))
		return vpci_config_vector(vp);
	if (q >= vp->dev->num_queues)
		return 0;
	if (off == COMMON(queue_msix_vector))
		return vpci_queue_vector(vp, q);
	if (off == COMMON(queue_notify_off))
		return q;
	return 0;
}

static void common_write(struct virtio_pci *vp, unsigned int off, uint64_t v)
{
	uint16_t q = (uint16_t)vt_read(&vp->core, VT_QUEUE_SEL);
	int reg = core_reg(off);
	bool changed = false;

	if (reg >= 0) {
		vt_write(&vp->core, (enum vt_reg)reg, (uint32_t)v);
		return;
	}
	pthread_mutex_lock(&vp->lock);
	if (off == COMMON(msix_config)) {
		vp->msix_config = checked_vector(vp, v);
	} else if (off == COMMON(queue_msix_vector) && q < vp->dev->num_queues) {
		changed = vp->queue_vector[q] != checked_vector(vp, v);
		vp->queue_vector[q] = checked_vector(vp, v);
	}
	pthread_mutex_unlock(&vp->lock);
	/* A live device that handed its rings to vhost must re-bind the call fd. */
	if (changed && vt_driver_ok(&vp->core))
		event_loop_post(vp->core.loop, &vp->irqs_changed);
}

static void common_io(struct virtio_pci *vp, uint64_t off, uint8_t *data, unsigned int size,
		      bool is_write)
{
	uint64_t v;

	if (off >= sizeof(struct virtio_pci_common_cfg) || size > 4) {
		if (!is_write)
			memset(data, 0, size);
		return;
	}
	if (is_write) {
		load_le(data, size, &v);
		common_write(vp, (unsigned int)off, v);
	} else {
		store_le(data, size, common_read(vp, (unsigned int)off));
	}
}

/* ---- BAR 0 ---- */

static void bar_io(void *opaque, uint64_t off, uint8_t *data, unsigned int size, bool is_write)
{
	struct virtio_pci *vp = opaque;

	if (off < VPCI_ISR_OFF) {
		common_io(vp, off - VPCI_COMMON_OFF, data, size, is_write);
	} else if (off < VPCI_DEVICE_OFF) {
		if (!is_write) {
			memset(data, 0, size);
			if (off == VPCI_ISR_OFF)
				data[0] = vpci_isr_read(vp);
		}
	} else if (off < VPCI_NOTIFY_OFF) {
		vt_config_access(&vp->core, off - VPCI_DEVICE_OFF, data, size, is_write);
	} else if (off < VPCI_MSIX_TABLE_OFF) {
		if (is_write)
			vt_kick(&vp->core, (uint32_t)((off - VPCI_NOTIFY_OFF) / VPCI_NOTIFY_MULT));
		else
			memset(data, 0, size);
	} else if (off < VPCI_MSIX_PBA_OFF) {
		msix_table_io(&vp->msix, off - VPCI_MSIX_TABLE_OFF, data, size, is_write);
	} else {
		msix_pba_io(&vp->msix, off - VPCI_MSIX_PBA_OFF, data, size, is_write);
	}
}

/*
 * VIRTIO_PCI_CAP_PCI_CFG: a window in config space onto BAR 0 (firmware uses it). An unlocked
 * hook, so the access takes exactly the locks a BAR access takes, in the same order.
 */
static void cfg_window_hook(void *opaque, struct pci_function *f, unsigned int offset,
			    uint8_t *data, unsigned int size, bool is_write)
{
	struct virtio_pci *vp = opaque;
	unsigned int data_off =
	    vp->cfg_window_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);
	struct virtio_pci_cfg_cap cap;
	uint8_t buf[4] = {0};

	pci_cfg_get(f, vp->cfg_window_cap, &cap, sizeof(cap));
	if (cap.cap.bar != 0 ||
	    (cap.cap.length != 1 && cap.cap.length != 2 && cap.cap.length != 4) ||
	    cap.cap.offset >= VPCI_BAR_SIZE || cap.cap.offset % cap.cap.length)
		return;
	if (is_write) {
		bar_io(vp, cap.cap.offset, cap.pci_cfg_data, cap.cap.length, true);
		return;
	}
	bar_io(vp, cap.cap.offset, buf, cap.cap.length, false);
	pci_cfg_set(f, data_off, buf, sizeof(buf));
	/* data was filled from the old bytes: give the driver the ones just read. */
	for (unsigned int i = 0; i < size; i++)
		if (offset + i >= data_off && offset + i < data_off + sizeof(buf))
			data[i] = buf[offset + i - data_off];
}

/* ---- kicks and BAR moves ---- */

static void bind_kicks(struct virtio_pci *vp, uint64_t bar, bool assign)
{
	if (bar == PCI_BAR_UNMAPPED)
		return;
	for (uint16_t q = 0; q < vp->dev->num_queues; q++) {
		uint64_t addr = bar + VPCI_NOTIFY_OFF + (uint64_t)q * VPCI_NOTIFY_MULT;
		if (vp->plat.ioeventfd(vp->plat.opaque, vt_kick_fd(&vp->core, q), addr, assign,
				       NULL))
			vt_count_error(&vp->core);
	}
}

static void on_bar_remap(void *opaque, struct pci_function *f, int bar, uint64_t old_addr,
			 uint64_t new_addr)
{
	struct virtio_pci *vp = opaque;

	(void)f;
	if (bar != 0)
		return;
	bind_kicks(vp, old_addr, false);
	bind_kicks(vp, new_addr, true);
	vp->notify_base = new_addr;
}

/* ---- setup ---- */

static int add_vendor_cap(struct virtio_pci *vp, uint8_t type, uint32_t offset, uint32_t length,
			  struct kerr *err)
{
	struct virtio_pci_cap cap = {
	    .cap_len = sizeof(cap),
	    .cfg_type = type,
	    .bar = 0,
	    .offset = offset,
	    .length = length,
	};

	return pci_add_cap(&vp->fn, PCI_CAP_ID_VNDR, &cap, sizeof(cap), NULL, err) < 0 ? -1 : 0;
}

static int add_caps(struct virtio_pci *vp, struct kerr *err)
{
	struct virtio_dev *d = vp->dev;
	struct virtio_pci_notify_cap notify = {
	    .cap = {.cap_len = sizeof(notify),
		    .cfg_type = VIRTIO_PCI_CAP_NOTIFY_CFG,
		    .bar = 0,
		    .offset = VPCI_NOTIFY_OFF,
		    .length = (uint32_t)d->num_queues * VPCI_NOTIFY_MULT},
	    .notify_off_multiplier = VPCI_NOTIFY_MULT,
	};
	struct virtio_pci_cfg_cap window = {
	    .cap = {.cap_len = sizeof(window), .cfg_type = VIRTIO_PCI_CAP_PCI_CFG},
	};
	struct virtio_pci_cfg_cap wmask;
	int off;

	if (add_vendor_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VPCI_COMMON_OFF,
			   sizeof(struct virtio_pci_common_cfg), err) ||
	    pci_add_cap(&vp->fn, PCI_CAP_ID_VNDR, &notify, sizeof(notify), NULL, err) < 0 ||
	    add_vendor_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VPCI_ISR_OFF, 1, err))
		return -1;
	if (d->config_len &&
	    add_vendor_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VPCI_DEVICE_OFF, d->config_len, err))
		return -1;
	/* The driver picks bar/offset/length and then moves data through pci_cfg_data. */
	memset(&wmask, 0, sizeof(wmask));
	wmask.cap.bar = 0xff;
	wmask.cap.offset = 0xffffffff;
	wmask.cap.length = 0xffffffff;
	memset(wmask.pci_cfg_data, 0xff, sizeof(wmask.pci_cfg_data));
	off = pci_add_cap(&vp->fn, PCI_CAP_ID_VNDR, &window, sizeof(window), &wmask, err);
	if (off < 0)
		return -1;
	vp->cfg_window_cap = (unsigned int)off;
	return pci_add_cfg_hook_unlocked(
	    &vp->fn, (unsigned int)off + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data), 4,
	    cfg_window_hook, vp, err);
}

int virtio_pci_create(struct virtio_pci **out, struct virtio_dev *dev,
		      const struct virtio_pci_platform *plat, struct irq_line intx,
		      struct kerr *err)
{
	struct virtio_pci *vp;
	struct pci_ids ids = {
	    .vendor = VIRTIO_PCI_VENDOR,
	    .device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + dev->device_id),
	    .subsys_vendor = VIRTIO_PCI_VENDOR,
	    .subsys = (uint16_t)dev->device_id,
	    .class_code = class_for(dev->device_id),
	    .revision = VIRTIO_PCI_REVISION,
	    .irq_pin = 1,
	};

	if (dev->config_len > VPCI_REGION_SIZE)
		return kerr_set(err, "%s: config space of %u bytes", dev->name, dev->config_len);
	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return kerr_set(err, "out of memory for %s", dev->name);
	if (vt_init(&vp->core, dev, plat->loop, &vpci_frontend_ops, vp, err)) {
		free(vp);
		return -1;
	}
	vp->dev = dev;
	vp->plat = *plat;
	vp->notify_base = PCI_BAR_UNMAPPED;
	pthread_mutex_init(&vp->lock, NULL);
	pthread_mutex_init(&vp->intx_lock, NULL);
	event_work_init(&vp->irqs_changed, do_irqs_changed, vp);
	dev->transport = &vpci_transport_ops;
	dev->transport_priv = vp;

	pci_function_init(&vp->fn, &ids, dev->name);
	vp->fn.intx = intx;
	vp->fn.bar_remap = on_bar_remap;
	vp->fn.bar_remap_opaque = vp;
	fe_reset(vp);
	if (pci_add_bar(&vp->fn, 0, VPCI_BAR_SIZE, PCI_BAR_MEM64, bar_io, vp, err) ||
	    add_caps(vp, err) || vpci_setup_vectors(vp, err))
		goto fail;
	*out = vp;
	return 0;
fail:
	virtio_pci_destroy(vp);
	return -1;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	if (!vp)
		return;
	bind_kicks(vp, vp->notify_base, false);
	event_loop_cancel(vp->core.loop, &vp->irqs_changed);
	vpci_destroy_vectors(vp);
	pci_function_destroy(&vp->fn);
	vt_destroy(&vp->core);
	pthread_mutex_destroy(&vp->lock);
	pthread_mutex_destroy(&vp->intx_lock);
	free(vp);
}
