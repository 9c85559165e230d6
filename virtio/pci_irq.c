#include "virtio/pci_irq.h"

#include <errno.h>
#include <linux/virtio_pci.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define VIRTIO_PCI_ISR_INTR 0x1 /* "a queue has used buffers" */

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

uint16_t vpci_queue_vector(struct virtio_pci *vp, uint16_t q)
{
	uint16_t v;

	pthread_mutex_lock(&vp->lock);
	v = q < vp->dev->num_queues ? vp->queue_vector[q] : VIRTIO_MSI_NO_VECTOR;
	pthread_mutex_unlock(&vp->lock);
	return v;
}

uint16_t vpci_config_vector(struct virtio_pci *vp)
{
	uint16_t v;

	pthread_mutex_lock(&vp->lock);
	v = vp->msix_config;
	pthread_mutex_unlock(&vp->lock);
	return v;
}

static void signal_queue(struct virtio_dev *d, uint16_t q)
{
	struct virtio_pci *vp = d->transport_priv;

	raise(vp, vpci_queue_vector(vp, q), VIRTIO_PCI_ISR_INTR);
}

static void signal_config(struct virtio_dev *d)
{
	struct virtio_pci *vp = d->transport_priv;

	vt_config_generation_bump(&vp->core);
	raise(vp, vpci_config_vector(vp), VIRTIO_PCI_ISR_CONFIG);
}

/* The vector's eventfd: masked or not, a signal on it is delivered the way the guest asked. */
static int call_fd(struct virtio_dev *d, uint16_t q)
{
	struct virtio_pci *vp = d->transport_priv;
	uint16_t vector = vpci_queue_vector(vp, q);

	if (!msix_enabled(&vp->msix))
		return -1;
	return vector < vp->nr_vectors ? vp->vectors[vector].masked_poll.fd : -1;
}

const struct virtio_transport_ops vpci_transport_ops = {
    .signal_queue = signal_queue,
    .signal_config = signal_config,
    .needs_reset = vt_op_needs_reset,
    .kick_fd = vt_op_kick_fd,
    .poll_kicks = vt_op_poll_kicks,
    .call_fd = call_fd,
};

static void msix_fire(void *opaque, unsigned int vector, uint64_t addr, uint32_t data)
{
	struct virtio_pci *vp = opaque;
	uint64_t one = 1;

	(void)addr;
	(void)data;
	/* Unmasked: the irqfd injects the MSI its GSI route holds; a full counter still does. */
	if (vector < vp->nr_vectors &&
	    write(vp->vectors[vector].masked_poll.fd, &one, sizeof(one)) < 0)
		vt_count_error(&vp->core);
}

/* Runs under the MSI-X lock (and fn.lock from config writes): KVM and epoll calls only. */
static void msix_vector_changed(void *opaque, unsigned int vector, uint64_t addr, uint32_t data,
				bool masked)
{
	struct virtio_pci *vp = opaque;
	struct virtio_pci_vector *v;

	if (vector >= vp->nr_vectors)
		return;
	v = &vp->vectors[vector];
	if (!masked && vp->plat.msi_route_set(vp->plat.opaque, v->gsi, addr, data, NULL))
		vt_count_error(&vp->core);
	if (masked == !v->irqfd_on)
		return;
	if (masked) {
		/* Detach first: from here on a signal only reaches the poll below. */
		if (vp->plat.irqfd(vp->plat.opaque, v->masked_poll.fd, v->gsi, false, NULL) ||
		    event_loop_add(vp->core.loop, &v->masked_poll, EPOLLIN, NULL))
			vt_count_error(&vp->core);
		v->irqfd_on = false;
	} else {
		/* Attaching an irqfd whose counter is set injects at once: nothing is lost. */
		event_loop_del(vp->core.loop, &v->masked_poll);
		if (vp->plat.irqfd(vp->plat.opaque, v->masked_poll.fd, v->gsi, true, NULL))
			vt_count_error(&vp->core);
		v->irqfd_on = true;
	}
}

/* Event loop: a masked (or MSI-X-disabled) vector was signalled, e.g. by vhost. */
static void on_masked_signal(void *opaque, uint32_t events)
{
	struct virtio_pci_vector *v = opaque;
	struct virtio_pci *vp = v->vp;
	uint64_t n;

	(void)events;
	if (read(v->masked_poll.fd, &n, sizeof(n)) != sizeof(n))
		return;
	if (!msix_notify(&vp->msix, v->index))
		set_intx(vp, v->index == vpci_config_vector(vp) ? VIRTIO_PCI_ISR_CONFIG
								: VIRTIO_PCI_ISR_INTR);
}

void vpci_signal_config(struct virtio_pci *vp)
{
	signal_config(vp->dev);
}

void vpci_isr_clear(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->intx_lock);
	vp->isr = 0;
	pci_intx_set(&vp->fn, 0);
	pthread_mutex_unlock(&vp->intx_lock);
}

uint8_t vpci_isr_read(struct virtio_pci *vp)
{
	uint8_t v;

	/* Reading the ISR acknowledges it and drops the INTx line. */
	pthread_mutex_lock(&vp->intx_lock);
	v = vp->isr;
	vp->isr = 0;
	pci_intx_set(&vp->fn, 0);
	pthread_mutex_unlock(&vp->intx_lock);
	return v;
}

/* Every vector starts masked: its eventfd is polled by kestrel, no irqfd attached. */
int vpci_setup_vectors(struct virtio_pci *vp, struct kerr *err)
{
	struct msix_ops ops = {msix_fire, msix_vector_changed, vp};

	vp->nr_vectors = vp->dev->num_queues + 1u;
	vp->vectors = calloc(vp->nr_vectors, sizeof(*vp->vectors));
	if (!vp->vectors)
		return kerr_set(err, "out of memory for MSI-X vectors");
	for (unsigned int i = 0; i < vp->nr_vectors; i++)
		vp->vectors[i].masked_poll.fd = -1;
	for (unsigned int i = 0; i < vp->nr_vectors; i++) {
		struct virtio_pci_vector *v = &vp->vectors[i];

		v->vp = vp;
		v->index = i;
		v->masked_poll = (struct event_handler){eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
							on_masked_signal, v};
		if (v->masked_poll.fd < 0)
			return kerr_set(err, "eventfd: %s", strerror(errno));
		if (vp->plat.msi_route_add(vp->plat.opaque, vp->plat.msi_devid, &v->gsi, err) ||
		    event_loop_add(vp->core.loop, &v->masked_poll, EPOLLIN, err))
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

void vpci_destroy_vectors(struct virtio_pci *vp)
{
	for (unsigned int i = 0; vp->vectors && i < vp->nr_vectors; i++) {
		struct virtio_pci_vector *v = &vp->vectors[i];

		if (v->masked_poll.fd < 0)
			continue;
		if (v->irqfd_on)
			vp->plat.irqfd(vp->plat.opaque, v->masked_poll.fd, v->gsi, false, NULL);
		else
			event_loop_del(vp->core.loop, &v->masked_poll);
		close(v->masked_poll.fd);
	}
	free(vp->vectors);
	if (vp->msix_ready)
		msix_destroy(&vp->msix);
}
