/*
 * The device tree an arm64 guest learns its machine from, built with libfdt's sequential
 * writer. The description is neutral data (addresses, interrupt numbers); arm64_fdt_build
 * knows the bindings (Documentation/devicetree/bindings/...).
 */
#ifndef KESTREL_ARM64_DEVICE_TREE_H
#define KESTREL_ARM64_DEVICE_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"

struct arm64_fdt_window {
	uint64_t base, size;
	uint32_t spi; /* GIC SPI number (INTID - 32); level-triggered, active high */
};

struct arm64_fdt_desc {
	unsigned int nr_cpus;
	uint64_t ram_base, ram_size;
	const char *bootargs;
	uint64_t initrd_start, initrd_size;  /* size 0: no initrd */
	bool its;			     /* a GICv3 ITS: MSIs for PCI */
	const struct arm64_fdt_window *mmio; /* virtio-mmio devices */
	unsigned int nr_mmio;
	bool pci;
	bool power_key; /* a PL061 GPIO with a gpio-keys power key (SIGTERM presses it) */
};

/* Writes the blob into buf (size bytes); returns its length, or -1 with a reason. */
int arm64_fdt_build(const struct arm64_fdt_desc *d, void *buf, size_t size, struct kerr *err);

/* The MPIDR KVM gives vCPU id (Aff0 = id % 16, Aff1 = id / 16), as the cpu node's reg. */
uint64_t arm64_mpidr(unsigned int id);

#endif
