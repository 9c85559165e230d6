#include "virtio/pci.h"

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
#define VIRTIO_PCI_ISR_INTR 0x1 /* "a queue has used buffers" */

/* Things to do after a common-config write, once no lock is held. */
enum {
	ACT_RESET = 1,
	ACT_ACTIVATE = 2,
	ACT_NEEDS_RESET = 4,
	ACT_IRQS_CHANGED = 8,
};

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

static uint64_t offered_features(const struct virtio_dev *d)
{
	return d->host_features | (1ULL << VIRTIO_F_VERSION_1);
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

/* ---- interrupts ---- */

static void set_intx(struct virtio_pci *vp, uint8_t isr_bits)
{
	pthread_mutex_lock(&vp->intx_lock);
	vp->isr |= isr_bits;
	pci_intx_set(&vp->fn, vp->isr ? 1 : 0);
	pthread_mutex_unlock(&vp->intx_lock);
}

static void raise(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bits)
{
	/* msix_notify is false only with MSI-X off: then INTx and the ISR carry it. */
	if (!msix_notify(&vp->msix, vector))
		set_intx(vp, isr_bits);
}

static void signal_queue(struct virtio_dev *d, uint16_t q)
{
	struct virtio_pci *vp = d->transport_priv;
	uint16_t vector;

	pthread_mutex_lock(&vp->lock);
	vector = vp->queues[q].msix_vector;
	pthread_mutex_unlock(&vp->lock);
	raise(vp, vector, VIRTIO_PCI_ISR_INTR);
}

static void signal_config(struct virtio_dev *d)
{
	struct virtio_pci *vp = d->transport_priv;
	uint16_t vector;

	pthread_mutex_lock(&vp->lock);
	vector = vp->msix_config;
	vp->config_generation++;
	pthread_mutex_unlock(&vp->lock);
	raise(vp, vector, VIRTIO_PCI_ISR_CONFIG);
}

static void needs_reset(struct virtio_dev *d)
{
	struct virtio_pci *vp = d->transport_priv;
	bool live;

	pthread_mutex_lock(&vp->lock);
	vp->errors++;
	vp->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	live = vp->status & VIRTIO_CONFIG_S_DRIVER_OK;
	pthread_mutex_unlock(&vp->lock);
	if (live)
		signal_config(d);
}

static int kick_fd(struct virtio_dev *d, uint16_t q)
{
	struct virtio_pci *vp = d->transport_priv;

	return q < d->num_queues ? vp->queues[q].kick.fd : -1;
}

/* A vhost back end takes the kick eventfd over: the event loop must stop reading it. */
static void poll_kicks(struct virtio_dev *d, uint16_t q, bool poll)
{
	struct virtio_pci *vp = d->transport_priv;
	struct virtio_pci_queue *pq;

	if (q >= d->num_queues)
		return;
	pq = &vp->queues[q];
	if (pq->polled == poll)
		return;
	if (poll)
		pq->polled = event_loop_add(vp->plat.loop, &pq->kick, EPOLLIN, NULL) == 0;
	else if (event_loop_del(vp->plat.loop, &pq->kick) == 0)
		pq->polled = false;
}

static int call_fd(struct virtio_dev *d, uint16_t q)
{
	struct virtio_pci *vp = d->transport_priv;
	uint16_t vector;

	if (q >= d->num_queues || !msix_enabled(&vp->msix))
		return -1;
	pthread_mutex_lock(&vp->lock);
	vector = vp->queues[q].msix_vector;
	pthread_mutex_unlock(&vp->lock);
	return vector < vp->nr_vectors ? vp->vectors[vector].efd : -1;
}

static const struct virtio_transport_ops vpci_transport_ops = {
    .signal_queue = signal_queue,
    .signal_config = signal_config,
    .needs_reset = needs_reset,
    .kick_fd = kick_fd,
    .poll_kicks = poll_kicks,
    .call_fd = call_fd,
};

static void msix_fire(void *opaque, unsigned int vector, uint64_t addr, uint32_t data)
{
	struct virtio_pci *vp = opaque;
	uint64_t one = 1;

	(void)addr;
	(void)data;
	/* The irqfd injects the MSI its GSI route holds; a full counter still interrupts. */
	if (vector < vp->nr_vectors && write(vp->vectors[vector].efd, &one, sizeof(one)) < 0)
		vp->errors++;
}

static void msix_vector_changed(void *opaque, unsigned int vector, uint64_t addr, uint32_t data,
				bool masked)
{
	struct virtio_pci *vp = opaque;

	/* Masking is honoured in msix_notify (pending bit), so only the message matters here. */
	if (masked || vector >= vp->nr_vectors)
		return;
	if (vp->plat.msi_route_set(vp->plat.opaque, vp->vectors[vector].gsi, addr, data, NULL))
		vp->errors++;
}

/* ---- reset and activation: run on the event loop, which owns the device ---- */

static void do_reset(void *arg)
{
	struct virtio_pci *vp = arg;
	struct virtio_dev *d = vp->dev;

	d->ops->reset(d);
	for (uint16_t q = 0; q < d->num_queues; q++)
		virtq_reset(&d->vqs[q]);
}

static void do_activate(void *arg)
{
	struct virtio_pci *vp = arg;
	struct virtio_dev *d = vp->dev;

	if (d->ops->activate(d)) {
		needs_reset(d);
		return;
	}
	/* Drivers may kick before DRIVER_OK; those kicks were ignored, so look now. */
	for (uint16_t q = 0; q < d->num_queues; q++)
		if (d->vqs[q].ready)
			d->ops->queue_notify(d, q);
}

static void do_irqs_changed(void *arg)
{
	struct virtio_pci *vp = arg;
	struct virtio_dev *d = vp->dev;

	if (!d->ops->queue_irq_changed)
		return;
	for (uint16_t q = 0; q < d->num_queues; q++)
		d->ops->queue_irq_changed(d, q);
}

static void reset_registers(struct virtio_pci *vp)
{
	struct virtio_dev *d = vp->dev;

	vp->status = 0;
	vp->device_feature_select = vp->guest_feature_select = 0;
	vp->msix_config = VIRTIO_MSI_NO_VECTOR;
	vp->queue_select = 0;
	d->guest_features = 0;
	for (uint16_t q = 0; q < d->num_queues; q++) {
		struct virtio_pci_queue *pq = &vp->queues[q];
		pq->size = d->queue_max_size;
		pq->msix_vector = VIRTIO_MSI_NO_VECTOR;
		pq->enabled = false;
		pq->desc = pq->avail = pq->used = 0;
	}
}

static void run_actions(struct virtio_pci *vp, unsigned int act, bool deferred)
{
	if (act & ACT_RESET) {
		if (deferred)
			event_loop_post(vp->plat.loop, do_reset, vp);
		else
			event_loop_call(vp->plat.loop, do_reset, vp);
		if (!deferred) {
			pthread_mutex_lock(&vp->intx_lock);
			vp->isr = 0;
			pci_intx_set(&vp->fn, 0);
			pthread_mutex_unlock(&vp->intx_lock);
		}
	}
	if (act & ACT_ACTIVATE) {
		if (deferred)
			event_loop_post(vp->plat.loop, do_activate, vp);
		else
			event_loop_call(vp->plat.loop, do_activate, vp);
	}
	if ((act & ACT_NEEDS_RESET) && !deferred)
		signal_config(vp->dev);
	if (act & ACT_IRQS_CHANGED)
		event_loop_post(vp->plat.loop, do_irqs_changed, vp);
}

/* ---- common configuration ---- */

static bool features_ok(const struct virtio_dev *d)
{
	uint64_t g = d->guest_features;

	return !(g & ~offered_features(d)) && (g & (1ULL << VIRTIO_F_VERSION_1));
}

static unsigned int status_write(struct virtio_pci *vp, uint8_t v)
{
	struct virtio_dev *d = vp->dev;
	uint8_t old = vp->status;

	if (v == 0) {
		reset_registers(vp);
		return ACT_RESET;
	}
	if ((v & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !features_ok(d)) {
		/* The driver reads FEATURES_OK back and gives up when it is clear. */
		vp->errors++;
		v &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
	}
	vp->status = v | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
	if ((v & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
		if (!(vp->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
			vp->errors++;
			vp->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
			return ACT_NEEDS_RESET;
		}
		return ACT_ACTIVATE;
	}
	return 0;
}

static unsigned int queue_enable(struct virtio_pci *vp, struct virtio_pci_queue *pq)
{
	struct virtio_dev *d = vp->dev;
	struct kerr err;

	if (pq->enabled)
		return 0;
	if (virtq_setup(&d->vqs[pq->index], d->mem, pq->size, pq->desc, pq->avail, pq->used,
			d->guest_features, &err)) {
		vp->errors++;
		vp->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
		return ACT_NEEDS_RESET;
	}
	pq->enabled = true;
	return 0;
}

static struct virtio_pci_queue *selected_queue(struct virtio_pci *vp)
{
	if (vp->queue_select >= vp->dev->num_queues)
		return NULL;
	return &vp->queues[vp->queue_select];
}

#define COMMON(field) offsetof(struct virtio_pci_common_cfg, field)

static uint64_t common_read(struct virtio_pci *vp, unsigned int off)
{
	struct virtio_dev *d = vp->dev;
	struct virtio_pci_queue *pq = selected_queue(vp);

	switch (off) {
	case COMMON(device_feature_select):
		return vp->device_feature_select;
	case COMMON(device_feature):
		return vp->device_feature_select < 2
			   ? (uint32_t)(offered_features(d) >> (32 * vp->device_feature_select))
			   : 0;
	case COMMON(guest_feature_select):
		return vp->guest_feature_select;
	case COMMON(guest_feature):
		return vp->guest_feature_select < 2
			   ? (uint32_t)(d->guest_features >> (32 * vp->guest_feature_select))
			   : 0;
	case COMMON(msix_config):
		return vp->msix_config;
	case COMMON(num_queues):
		return d->num_queues;
	case COMMON(device_status):
		return vp->status;
	case COMMON(config_generation):
		return vp->config_generation;
	case COMMON(queue_select):
		return vp->queue_select;
	}
	if (!pq)
		return 0;
	switch (off) {
	case COMMON(queue_size):
		return pq->size;
	case COMMON(queue_msix_vector):
		return pq->msix_vector;
	case COMMON(queue_enable):
		return pq->enabled;
	case COMMON(queue_notify_off):
		return pq->index;
	case COMMON(queue_desc_lo):
		return (uint32_t)pq->desc;
	case COMMON(queue_desc_hi):
		return pq->desc >> 32;
	case COMMON(queue_avail_lo):
		return (uint32_t)pq->avail;
	case COMMON(queue_avail_hi):
		return pq->avail >> 32;
	case COMMON(queue_used_lo):
		return (uint32_t)pq->used;
	case COMMON(queue_used_hi):
		return pq->used >> 32;
	default:
		return 0;
	}
}

static void set_half(uint64_t *reg, bool high, uint64_t v)
{
	if (high)
		*reg = (*reg & 0xffffffffULL) | (v << 32);
	else
		*reg = (*reg & ~0xffffffffULL) | (v & 0xffffffffULL);
}

static unsigned int common_write(struct virtio_pci *vp, unsigned int off, uint64_t v)
{
	struct virtio_dev *d = vp->dev;
	struct virtio_pci_queue *pq;

	switch (off) {
	case COMMON(device_feature_select):
		vp->device_feature_select = (uint32_t)v;
		return 0;
	case COMMON(guest_feature_select):
		vp->guest_feature_select = (uint32_t)v;
		return 0;
	case COMMON(guest_feature):
		/* Features are frozen once FEATURES_OK was accepted. */
		if (vp->guest_feature_select < 2 && !(vp->status & VIRTIO_CONFIG_S_FEATURES_OK))
			set_half(&d->guest_features, vp->guest_feature_select == 1, v);
		return 0;
	case COMMON(msix_config):
		vp->msix_config = v < vp->nr_vectors ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
		return 0;
	case COMMON(device_status):
		return status_write(vp, (uint8_t)v);
	case COMMON(queue_select):
		vp->queue_select = (uint16_t)v;
		return 0;
	}
	pq = selected_queue(vp);
	if (!pq)
		return 0;
	if (off == COMMON(queue_msix_vector)) {
		pq->msix_vector = v < vp->nr_vectors ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
		return (vp->status & VIRTIO_CONFIG_S_DRIVER_OK) ? ACT_IRQS_CHANGED : 0;
	}
	if (off == COMMON(queue_enable))
		return v == 1 ? queue_enable(vp, pq) : 0;
	/* The rest describe the ring: frozen while the queue is enabled. */
	if (pq->enabled)
		return 0;
	switch (off) {
	case COMMON(queue_size):
		pq->size = (uint16_t)v;
		break;
	case COMMON(queue_desc_lo):
	case COMMON(queue_desc_hi):
		set_half(&pq->desc, off == COMMON(queue_desc_hi), v);
		break;
	case COMMON(queue_avail_lo):
	case COMMON(queue_avail_hi):
		set_half(&pq->avail, off == COMMON(queue_avail_hi), v);
		break;
	case COMMON(queue_used_lo):
	case COMMON(queue_used_hi):
		set_half(&pq->used, off == COMMON(queue_used_hi), v);
		break;
	default:
		break;
	}
	return 0;
}

static void common_io(struct virtio_pci *vp, uint64_t off, uint8_t *data, unsigned int size,
		      bool is_write, bool deferred)
{
	unsigned int act = 0;
	uint64_t v;

	if (off >= sizeof(struct virtio_pci_common_cfg) || size > 4) {
		if (!is_write)
			memset(data, 0, size);
		return;
	}
	pthread_mutex_lock(&vp->lock);
	if (is_write) {
		load_le(data, size, &v);
		act = common_write(vp, (unsigned int)off, v);
	} else {
		store_le(data, size, common_read(vp, (unsigned int)off));
	}
	pthread_mutex_unlock(&vp->lock);
	if (act)
		run_actions(vp, act, deferred);
}

/* ---- BAR 0 ---- */

static uint8_t isr_read(struct virtio_pci *vp, bool clear)
{
	uint8_t v;

	pthread_mutex_lock(&vp->intx_lock);
	v = vp->isr;
	if (clear) {
		/* Reading the ISR acknowledges it and drops the INTx line. */
		vp->isr = 0;
		pci_intx_set(&vp->fn, 0);
	}
	pthread_mutex_unlock(&vp->intx_lock);
	return v;
}

static void kick(struct virtio_pci *vp, uint64_t off)
{
	uint64_t q = off / VPCI_NOTIFY_MULT, one = 1;

	/* Normally the ioeventfd catches this; a write it missed still reaches the queue. */
	if (q < vp->dev->num_queues &&
	    write(vp->queues[q].kick.fd, &one, sizeof(one)) != sizeof(one))
		vp->errors++;
}

static void bar_access(struct virtio_pci *vp, uint64_t off, uint8_t *data, unsigned int size,
		       bool is_write, bool via_cfg_window)
{
	struct virtio_dev *d = vp->dev;

	if (off < VPCI_ISR_OFF) {
		common_io(vp, off - VPCI_COMMON_OFF, data, size, is_write, via_cfg_window);
	} else if (off < VPCI_DEVICE_OFF) {
		if (!is_write) {
			memset(data, 0, size);
			/* Reads through the config window do not acknowledge (they hold the
			 * function's lock, which dropping INTx needs). */
			if (off == VPCI_ISR_OFF)
				data[0] = isr_read(vp, !via_cfg_window);
		}
	} else if (off < VPCI_NOTIFY_OFF) {
		uint64_t o = off - VPCI_DEVICE_OFF;
		if (o >= d->config_len || size > d->config_len - o) {
			if (!is_write)
				memset(data, 0, size);
		} else if (is_write) {
			d->ops->config_write(d, (uint32_t)o, data, size);
		} else {
			d->ops->config_read(d, (uint32_t)o, data, size);
		}
	} else if (off < VPCI_MSIX_TABLE_OFF) {
		if (is_write)
			kick(vp, off - VPCI_NOTIFY_OFF);
		else
			memset(data, 0, size);
	} else if (off < VPCI_MSIX_PBA_OFF) {
		msix_table_io(&vp->msix, off - VPCI_MSIX_TABLE_OFF, data, size, is_write);
	} else {
		msix_pba_io(&vp->msix, off - VPCI_MSIX_PBA_OFF, data, size, is_write);
	}
}

static void bar_io(void *opaque, uint64_t off, uint8_t *data, unsigned int size, bool is_write)
{
	bar_access(opaque, off, data, size, is_write, false);
}

/* VIRTIO_PCI_CAP_PCI_CFG: a window in config space onto BAR 0 (firmware uses it). */
static void cfg_window_hook(void *opaque, struct pci_function *f, unsigned int offset,
			    uint8_t *data, unsigned int size, bool is_write)
{
	struct virtio_pci *vp = opaque;
	struct virtio_pci_cfg_cap cap;
	uint8_t buf[4];

	(void)offset;
	(void)data;
	(void)size;
	pci_cfg_peek(f, vp->cfg_window_cap, &cap, sizeof(cap));
	if (cap.cap.bar != 0 ||
	    (cap.cap.length != 1 && cap.cap.length != 2 && cap.cap.length != 4) ||
	    cap.cap.offset >= VPCI_BAR_SIZE || cap.cap.offset % cap.cap.length)
		return;
	if (is_write) {
		bar_access(vp, cap.cap.offset, cap.pci_cfg_data, cap.cap.length, true, true);
	} else {
		memset(buf, 0, sizeof(buf));
		bar_access(vp, cap.cap.offset, buf, cap.cap.length, false, true);
		pci_cfg_poke(f,
			     vp->cfg_window_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data),
			     buf, sizeof(buf));
		/* The read already copied the old bytes into data: refresh them. */
		pci_cfg_peek(f, offset, data, size);
	}
}

/* ---- kicks and BAR moves ---- */

static void on_kick(void *opaque, uint32_t events)
{
	struct virtio_pci_queue *pq = opaque;
	struct virtio_pci *vp = pq->vp;
	bool live;
	uint64_t v;

	(void)events;
	if (read(pq->kick.fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&vp->lock);
	live = (vp->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(vp->status & VIRTIO_CONFIG_S_NEEDS_RESET) && pq->enabled;
	pthread_mutex_unlock(&vp->lock);
	if (live)
		vp->dev->ops->queue_notify(vp->dev, pq->index);
}

static void bind_kicks(struct virtio_pci *vp, uint64_t bar, bool assign)
{
	if (bar == PCI_BAR_UNMAPPED)
		return;
	for (uint16_t q = 0; q < vp->dev->num_queues; q++) {
		uint64_t addr = bar + VPCI_NOTIFY_OFF + (uint64_t)q * VPCI_NOTIFY_MULT;
		if (vp->plat.ioeventfd(vp->plat.opaque, vp->queues[q].kick.fd, addr, assign, NULL))
			vp->errors++;
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
	return pci_add_cfg_hook(
	    &vp->fn, (unsigned int)off + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data), 4,
	    cfg_window_hook, vp, err);
}

static int setup_vectors(struct virtio_pci *vp, struct kerr *err)
{
	struct msix_ops ops = {msix_fire, msix_vector_changed, vp};

	vp->nr_vectors = vp->dev->num_queues + 1u;
	vp->vectors = calloc(vp->nr_vectors, sizeof(*vp->vectors));
	if (!vp->vectors)
		return kerr_set(err, "out of memory for MSI-X vectors");
	for (unsigned int i = 0; i < vp->nr_vectors; i++)
		vp->vectors[i].efd = -1;
	for (unsigned int i = 0; i < vp->nr_vectors; i++) {
		vp->vectors[i].efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->vectors[i].efd < 0)
			return kerr_set(err, "eventfd: %s", strerror(errno));
		if (vp->plat.msi_route_add(vp->plat.opaque, vp->vectors[i].efd, &vp->vectors[i].gsi,
					   err))
			return -1;
	}
	if (msix_init(&vp->msix, vp->nr_vectors, &ops, err))
		return -1;
	vp->msix_ready = true;
	return msix_add_cap(&vp->msix, &vp->fn, 0, VPCI_MSIX_TABLE_OFF, 0, VPCI_MSIX_PBA_OFF, err) <
		       0
		   ? -1
		   : 0;
}

static int setup_queues(struct virtio_pci *vp, struct kerr *err)
{
	struct virtio_dev *d = vp->dev;

	for (uint16_t q = 0; q < d->num_queues; q++)
		vp->queues[q].kick.fd = -1;
	for (uint16_t q = 0; q < d->num_queues; q++) {
		struct virtio_pci_queue *pq = &vp->queues[q];
		pq->vp = vp;
		pq->index = q;
		pq->kick =
		    (struct event_handler){eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), on_kick, pq};
		if (pq->kick.fd < 0)
			return kerr_set(err, "eventfd: %s", strerror(errno));
		if (event_loop_add(vp->plat.loop, &pq->kick, EPOLLIN, err))
			return -1;
		pq->polled = true;
	}
	return 0;
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

	if (dev->num_queues == 0 || dev->num_queues > VIRTIO_MAX_QUEUES ||
	    dev->config_len > VPCI_REGION_SIZE)
		return kerr_set(err, "%s: bad queue count or config size", dev->name);
	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return kerr_set(err, "out of memory for %s", dev->name);
	vp->dev = dev;
	vp->plat = *plat;
	vp->notify_base = PCI_BAR_UNMAPPED;
	pthread_mutex_init(&vp->lock, NULL);
	pthread_mutex_init(&vp->intx_lock, NULL);
	dev->transport = &vpci_transport_ops;
	dev->transport_priv = vp;

	pci_function_init(&vp->fn, &ids, dev->name);
	vp->fn.intx = intx;
	vp->fn.bar_remap = on_bar_remap;
	vp->fn.bar_remap_opaque = vp;
	reset_registers(vp);
	if (pci_add_bar(&vp->fn, 0, VPCI_BAR_SIZE, PCI_BAR_MEM64, bar_io, vp, err) ||
	    setup_queues(vp, err) || add_caps(vp, err) || setup_vectors(vp, err))
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
	for (uint16_t q = 0; q < vp->dev->num_queues; q++) {
		if (vp->queues[q].kick.fd >= 0) {
			if (vp->queues[q].polled)
				event_loop_del(vp->plat.loop, &vp->queues[q].kick);
			close(vp->queues[q].kick.fd);
		}
	}
	for (unsigned int i = 0; vp->vectors && i < vp->nr_vectors; i++)
		if (vp->vectors[i].efd >= 0)
			close(vp->vectors[i].efd);
	free(vp->vectors);
	if (vp->msix_ready)
		msix_destroy(&vp->msix);
	pci_function_destroy(&vp->fn);
	pthread_mutex_destroy(&vp->lock);
	pthread_mutex_destroy(&vp->intx_lock);
	free(vp);
}
