/*
 * The virtio-pci transport, modern (VIRTIO 1.x) only: one PCI function per device with a
 * 64-bit memory BAR holding the common, ISR, device and notify regions and the MSI-X table.
 * Guest kicks arrive through ioeventfds on the notify addresses; interrupts leave through
 * MSI-X vectors (irqfds on GSI routes) or, with MSI-X off, INTx with the ISR register.
 * The KVM side is reached only through struct virtio_pci_platform.
 */
#ifndef KESTREL_VIRTIO_PCI_H
#define KESTREL_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/msix.h"
#include "devices/pci.h"
#include "virtio/device.h"
#include "virtio/transport.h"
#include "vmm/event_loop.h"

/* BAR 0 layout: each region on its own 4 KiB page. */
#define VPCI_COMMON_OFF 0x0000
#define VPCI_ISR_OFF 0x1000
#define VPCI_DEVICE_OFF 0x2000
#define VPCI_NOTIFY_OFF 0x3000
#define VPCI_NOTIFY_MULT 4
#define VPCI_MSIX_TABLE_OFF 0x4000
#define VPCI_MSIX_PBA_OFF 0x6000
#define VPCI_BAR_SIZE 0x8000
#define VPCI_REGION_SIZE 0x1000

/* What the VMM does for the transport (KVM ioeventfds, GSI routes, irqfds). */
struct virtio_pci_platform {
	void *opaque;
	/* Bind (assign) or unbind efd to guest writes at MMIO address addr, any width. */
	int (*ioeventfd)(void *opaque, int efd, uint64_t addr, bool assign, struct kerr *err);
	/* A new MSI GSI route (no message yet) for MSIs from requester ID devid; the GSI in *gsi.
	 */
	int (*msi_route_add)(void *opaque, uint32_t devid, uint32_t *gsi, struct kerr *err);
	int (*msi_route_set)(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data,
			     struct kerr *err);
	/* Attach (assign) or detach efd as the irqfd that injects gsi. */
	int (*irqfd)(void *opaque, int efd, uint32_t gsi, bool assign, struct kerr *err);
	struct event_loop *loop;
	uint32_t msi_devid; /* the function's requester ID (bus << 8 | devfn) */
};

/*
 * One MSI-X vector. While it is unmasked, efd is an irqfd on its GSI route: a write (from
 * kestrel or from vhost) injects the message in the kernel. While it is masked, the irqfd is
 * detached and kestrel polls efd instead, turning each signal into the vector's pending bit,
 * so a masked vector never interrupts, whoever signals it.
 */
struct virtio_pci_vector {
	struct event_handler masked_poll; /* fd: the eventfd; polled while masked */
	uint32_t gsi;
	bool irqfd_on; /* guarded by the MSI-X lock (vector_changed runs under it) */
	struct virtio_pci *vp;
	unsigned int index;
};

/*
 * Locks, outermost first: intx_lock → fn.lock → msix.lock or the shared INTx line's lock →
 * (KVM). vp->lock and the transport core's lock are leaves, never held while another lock is
 * taken. No config-space hook of this transport runs under fn.lock (the PCI_CFG window is an
 * unlocked hook), so an access through the window takes the same locks in the same order as
 * one through the BAR.
 */
struct virtio_pci {
	struct virtio_dev *dev;
	struct virtio_transport core; /* status, features, queues, reset */
	struct pci_function fn;
	struct msix msix;
	struct virtio_pci_platform plat;
	unsigned int nr_vectors;
	struct virtio_pci_vector *vectors;

	pthread_mutex_t lock; /* leaf: the vector registers below */
	uint16_t msix_config;
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];

	pthread_mutex_t intx_lock; /* isr and the INTx line; taken before the function's lock */
	uint8_t isr;

	unsigned int cfg_window_cap; /* offset of the VIRTIO_PCI_CAP_PCI_CFG capability */
	bool msix_ready;
	struct event_work irqs_changed; /* tells the device its queues' vectors changed */
	uint64_t notify_base; /* guest address the ioeventfds are bound at, or PCI_BAR_UNMAPPED */
};

/*
 * Wraps dev in a virtio-pci function (not yet on a bus). INTx goes to intx (slot's pin).
 * The caller adds &vp->fn to the PCI bus and assigns its BAR.
 */
int virtio_pci_create(struct virtio_pci **out, struct virtio_dev *dev,
		      const struct virtio_pci_platform *plat, struct irq_line intx,
		      struct kerr *err);
void virtio_pci_destroy(struct virtio_pci *vp);

#endif
