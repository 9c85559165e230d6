/*
 * Where kestrel puts things in an x86 guest's physical address space. All fixed addresses live
 * here so the loaders, the register setup and the e820 map agree.
 */
#ifndef KESTREL_X86_LAYOUT_H
#define KESTREL_X86_LAYOUT_H

#include <stdint.h>

#define X86_GDT_ADDR 0x500ULL
#define X86_IDT_ADDR 0x520ULL
#define X86_PVH_INFO_ADDR 0x6000ULL    /* hvm_start_info, then its memmap and module list */
#define X86_BOOT_PARAMS_ADDR 0x7000ULL /* the Linux zero page */
#define X86_PML4_ADDR 0x9000ULL
#define X86_PDPT_ADDR 0xa000ULL
#define X86_PD_ADDR 0xb000ULL /* four pages: identity map of the first 4 GiB with 2 MiB pages */
#define X86_CMDLINE_ADDR 0x20000ULL
#define X86_CMDLINE_MAX 0x10000ULL /* bytes, including the terminating NUL */
#define X86_EBDA_ADDR 0x9fc00ULL   /* last KiB of base memory: the MP table lives here */
#define X86_BIOS_START 0xa0000ULL
/* ACPI tables (RSDP first, so a guest scanning the BIOS area finds it); e820 type 3. */
#define X86_ACPI_ADDR 0xe0000ULL
#define X86_ACPI_SIZE 0x10000ULL
#define X86_HIMEM_START 0x100000ULL /* 1 MiB: where protected-mode kernels are loaded */

#define X86_PCI_HOLE_START 0xc0000000ULL /* 3 GiB: RAM above this moves to 4 GiB */
#define X86_4G 0x100000000ULL

/* The 32-bit BAR window: the first 512 MiB of the hole, up to the ECAM window. */
#define X86_PCI_MMIO32_BASE X86_PCI_HOLE_START
#define X86_PCI_MMIO32_SIZE 0x20000000ULL

/*
 * PCI's ECAM (MMCONFIG) window for bus 0 (32 devices x 8 functions x 4 KiB), inside the hole,
 * well below the IOAPIC, LAPIC and the KVM TSS; reserved in e820.
 */
#define X86_PCI_ECAM_BASE 0xe0000000ULL
#define X86_PCI_ECAM_SIZE 0x100000ULL

/*
 * virtio-mmio devices: one 4 KiB window each, after the ECAM window, inside the hole; reserved
 * in e820. Their interrupts are the ISA pins no legacy device of kestrel's uses (PCI INTx has
 * 16..23), level-triggered.
 */
#define X86_VIRTIO_MMIO_BASE 0xe0200000ULL
#define X86_VIRTIO_MMIO_SLOT 0x1000ULL
#define X86_VIRTIO_MMIO_MAX 8
#define X86_VIRTIO_MMIO_SIZE (X86_VIRTIO_MMIO_SLOT * X86_VIRTIO_MMIO_MAX)

static inline unsigned int x86_virtio_mmio_gsi(unsigned int index)
{
	static const unsigned char gsis[X86_VIRTIO_MMIO_MAX] = {5, 6, 7, 9, 10, 11, 14, 15};

	return gsis[index % X86_VIRTIO_MMIO_MAX];
}

/*
 * I/O ports of the hardware-reduced ACPI platform (x86_acpi_desc in acpi.h has the semantics):
 * sleep control, sleep status, reset, then the GED's 32-bit event register at +4.
 */
#define X86_ACPI_PM_PORT 0x600
#define X86_ACPI_PM_PORT_LEN 3
#define X86_ACPI_GED_PORT 0x604
#define X86_ACPI_GED_PORT_LEN 4
#define X86_ACPI_GED_GSI 3 /* COM2's pin: kestrel has no COM2 */

/* The TSS and identity-map page KVM needs on Intel hosts sit just below 4 GiB, in the hole. */
#define X86_TSS_ADDR 0xfffbd000ULL
#define X86_IDENTITY_MAP_ADDR 0xfffbc000ULL

#endif
