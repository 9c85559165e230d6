/*
 * virtio-pci's interrupts, private to the transport: MSI-X vectors (irqfds while unmasked,
 * the pending bit while masked, whoever signals them), INTx with the ISR when MSI-X is off,
 * and the transport ops through which a device raises them.
 */
#ifndef KESTREL_VIRTIO_PCI_IRQ_H
#define KESTREL_VIRTIO_PCI_IRQ_H

#include "virtio/pci.h"

extern const struct virtio_transport_ops vpci_transport_ops;

/* One eventfd, GSI route and masked poll per vector; all start masked. */
int vpci_setup_vectors(struct virtio_pci *vp, struct kerr *err);
void vpci_destroy_vectors(struct virtio_pci *vp);

uint16_t vpci_queue_vector(struct virtio_pci *vp, uint16_t q);
uint16_t vpci_config_vector(struct virtio_pci *vp);
/* Config generation bump plus the config interrupt. */
void vpci_signal_config(struct virtio_pci *vp);
/* Reading the ISR acknowledges it and drops INTx. */
uint8_t vpci_isr_read(struct virtio_pci *vp);
void vpci_isr_clear(struct virtio_pci *vp);

#endif
