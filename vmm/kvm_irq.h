/*
 * Interrupt and notification plumbing on KVM: the GSI routing table (MSI routes for MSI-X
 * vectors, next to the in-kernel irqchip's own pins), irqfds that inject them, and ioeventfds
 * that turn guest kicks into eventfd signals without an exit to user space.
 */
#ifndef KESTREL_KVM_IRQ_H
#define KESTREL_KVM_IRQ_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/error.h"

#define IRQ_ROUTER_MAX 1024

struct irq_router {
	int vm_fd;
	pthread_mutex_t lock; /* vCPU threads update MSI routes when the guest programs MSI-X */
	struct kvm_irq_routing_entry entries[IRQ_ROUTER_MAX];
	unsigned int nr;
	uint32_t next_gsi;
};

/* Installs the irqchip's default routes (arch-provided) and makes the table current. */
int irq_router_init(struct irq_router *r, int vm_fd, struct kerr *err);
/*
 * Allocates a GSI routed as an MSI with this address/data from requester ID devid (passed to
 * KVM where the architecture's MSI controller needs it, arch_layout.msi_devid); commits.
 */
int irq_router_add_msi(struct irq_router *r, uint32_t devid, uint64_t addr, uint32_t data,
		       uint32_t *gsi, struct kerr *err);
int irq_router_set_msi(struct irq_router *r, uint32_t gsi, uint64_t addr, uint32_t data,
		       struct kerr *err);

/* KVM_IRQFD: writes to efd raise gsi (MSI) or pulse it (irqchip pin). */
int kvm_irqfd(int vm_fd, int efd, uint32_t gsi, bool assign, struct kerr *err);
/*
 * A level-triggered irqfd: writes to efd raise gsi until the guest's EOI, when KVM lowers it
 * and signals resample_fd (-1: a plain irqfd).
 */
int kvm_irqfd_resample(int vm_fd, int efd, int resample_fd, uint32_t gsi, bool assign,
		       struct kerr *err);
/* KVM_IOEVENTFD: a guest write of len bytes at addr (PIO or MMIO) signals efd. */
int kvm_ioeventfd(int vm_fd, int efd, uint64_t addr, uint32_t len, bool pio, bool assign,
		  struct kerr *err);
/* The same, only for writes of the value datamatch (-1: any value). */
int kvm_ioeventfd_match(int vm_fd, int efd, uint64_t addr, uint32_t len, bool pio,
			int64_t datamatch, bool assign, struct kerr *err);

#endif
