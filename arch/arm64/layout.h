/*
 * Where kestrel puts things in an arm64 guest's physical address space, and which GIC
 * interrupts its devices use. Below 1 GiB: devices; RAM from 1 GiB (like QEMU's virt machine,
 * so guests and tools expect nothing unusual).
 */
#ifndef KESTREL_ARM64_LAYOUT_H
#define KESTREL_ARM64_LAYOUT_H

#include <stdint.h>

#define ARM64_GICD_BASE 0x08000000ULL /* distributor, 64 KiB */
#define ARM64_GICD_SIZE 0x10000ULL
#define ARM64_GITS_BASE 0x08080000ULL /* ITS, 128 KiB */
#define ARM64_GITS_SIZE 0x20000ULL
#define ARM64_GICR_BASE 0x080a0000ULL /* redistributors, 128 KiB per vCPU */
#define ARM64_GICR_STRIDE 0x20000ULL
#define ARM64_GICR_MAX_SIZE 0x00f60000ULL /* up to 0x09000000: 123 vCPUs */

#define ARM64_UART_BASE 0x09000000ULL /* 16550-compatible, byte registers */
#define ARM64_UART_SIZE 0x1000ULL
#define ARM64_RTC_BASE 0x09010000ULL /* PL031 */
#define ARM64_RTC_SIZE 0x1000ULL
#define ARM64_GPIO_BASE 0x09030000ULL /* PL061: the power key */
#define ARM64_GPIO_POWER_KEY 3	      /* its line */
#define ARM64_GPIO_SIZE 0x1000ULL
/* The debug exit: byte V at +0 ends the VM, +1 is the boot timer (docs/cli.md). */
#define ARM64_DEBUG_EXIT_BASE 0x09040000ULL
#define ARM64_DEBUG_EXIT_SIZE 0x1000ULL

#define ARM64_VIRTIO_MMIO_BASE 0x0a000000ULL
#define ARM64_VIRTIO_MMIO_SLOT 0x1000ULL
#define ARM64_VIRTIO_MMIO_MAX 32

#define ARM64_PCI_MMIO32_BASE 0x10000000ULL /* BARs, up to the ECAM window */
#define ARM64_PCI_MMIO32_SIZE 0x2f000000ULL
#define ARM64_PCI_ECAM_BASE 0x3f000000ULL /* bus 0 only: 1 MiB */
#define ARM64_PCI_ECAM_SIZE 0x100000ULL

#define ARM64_RAM_BASE 0x40000000ULL

/* GIC shared interrupts (SPI numbers, as the device tree writes them; INTID = 32 + SPI). */
#define ARM64_SPI_UART 1
#define ARM64_SPI_RTC 2
#define ARM64_SPI_GPIO 3
#define ARM64_SPI_PCI_INTX 4	 /* + slot % 4: INTA..INTD swizzled over four lines */
#define ARM64_SPI_VIRTIO_MMIO 16 /* + device index */

/* Private interrupts of the architected timer (PPI numbers; INTID = 16 + PPI). */
#define ARM64_PPI_TIMER_SEC 13
#define ARM64_PPI_TIMER_NS 14
#define ARM64_PPI_TIMER_VIRT 11
#define ARM64_PPI_TIMER_HYP 10
#define ARM64_PPI_GIC_MAINT 9

#endif
