/*
 * The PCI bus and the virtio devices, built from the configuration, each on the transport
 * its option names (virtio-pci on the bus, or a virtio-mmio window): the wiring between
 * devices/ (PCI model), virtio/ (transports and device models) and KVM (routes, irqfds,
 * ioeventfds).
 */
#ifndef KESTREL_PCI_DEVICES_H
#define KESTREL_PCI_DEVICES_H

#include <stddef.h>
#include <stdint.h>

#include "devices/irq_or.h"
#include "devices/pci.h"
#include "vmm/config.h"
#include "vmm/error.h"
#include "vmm/kvm_irq.h"

struct vm;
struct virtio_dev;
struct virtio_pci;
struct virtio_mmio;

#define PCI_DEVICES_MAX (KESTREL_MAX_DISKS + KESTREL_MAX_NICS + 1)

struct pci_devices {
	struct pci_bus bus;
	struct pci_window w32;
	struct irq_router router;
	bool ioeventfd_any_length;
	/* Every virtio device, on PCI (vps[i]) or on virtio-mmio (mmios[i]). */
	struct virtio_dev *devs[PCI_DEVICES_MAX];
	struct virtio_pci *vps[PCI_DEVICES_MAX];
	struct virtio_mmio *mmios[PCI_DEVICES_MAX];
	unsigned int nr;
	unsigned int nr_mmio;	    /* windows used in the virtio-mmio area */
	struct virtio_dev *console; /* virtio-console, if any */
	unsigned int nr_nics;	    /* on vm->net_loop */
	/* The lines the functions' INTx pins share (arch_pci_intx_irq), each a wired-OR. */
	struct {
		unsigned int irq;
		struct irq_or line;
	} intx[PCI_DEVICES_MAX];
	unsigned int nr_intx;
};

/* Registers the bus on the VM's buses and creates every device the config asks for. */
int pci_devices_create(struct vm *vm, const struct vm_config *cfg, struct kerr *err);
void pci_devices_destroy(struct vm *vm);

/* Terminal input for virtio-console port 0 (event-loop thread). */
void pci_devices_console_input(void *opaque, const uint8_t *buf, size_t len);

#endif
