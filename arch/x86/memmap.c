/*
 * The x86 guest's RAM layout and e820 map. RAM that would fall into the 32-bit MMIO hole
 * [3 GiB, 4 GiB) (PCI BARs, IOAPIC, LAPIC, the KVM TSS) is moved above 4 GiB instead.
 */
#include "arch/x86/boot.h"
#include "arch/x86/boot_priv.h"
#include "arch/x86/layout.h"

/* Start of the BIOS ROM area, where guests scan for the MP floating pointer and the RSDP. */
#define X86_BIOS_ROM_ADDR 0xf0000ULL

/*
 * Returns the number of regions (1 or 2), or -1 when ram_size is below X86_RAM_MIN (16 MiB),
 * not a multiple of 4 KiB, or so large the region above 4 GiB would wrap: the CLI is expected
 * to reject such sizes with a message first.
 */
int x86_ram_layout(uint64_t ram_size, struct guest_mem_region out[2])
{
	uint64_t low = ram_size < X86_PCI_HOLE_START ? ram_size : X86_PCI_HOLE_START;

	if (ram_size < X86_RAM_MIN || ram_size % X86_PAGE_SIZE)
		return -1;
	if (ram_size - low > UINT64_MAX - X86_4G)
		return -1;

	out[0] = (struct guest_mem_region){.gpa = 0, .size = low, .host = NULL};
	if (ram_size == low)
		return 1;
	out[1] = (struct guest_mem_region){.gpa = X86_4G, .size = ram_size - low, .host = NULL};
	return 2;
}

static void e820_add(struct boot_e820_entry *out, int *n, uint64_t addr, uint64_t size,
		     uint32_t type)
{
	out[*n] = (struct boot_e820_entry){.addr = addr, .size = size, .type = type};
	(*n)++;
}

/* Returns the number of entries, or -1 if ram_size is invalid or max is too small. */
int x86_build_e820(uint64_t ram_size, struct boot_e820_entry *out, int max)
{
	struct guest_mem_region ram[2];
	int nr_ram = x86_ram_layout(ram_size, ram);
	int n = 0;

	if (nr_ram < 0 || max < 6 + nr_ram)
		return -1;

	e820_add(out, &n, 0, X86_EBDA_ADDR, E820_TYPE_RAM);
	/* The EBDA holds the MP table; the guest must not reuse it. */
	e820_add(out, &n, X86_EBDA_ADDR, X86_BIOS_START - X86_EBDA_ADDR, E820_TYPE_RESERVED);
	e820_add(out, &n, X86_ACPI_ADDR, X86_ACPI_SIZE, E820_TYPE_ACPI);
	e820_add(out, &n, X86_BIOS_ROM_ADDR, X86_HIMEM_START - X86_BIOS_ROM_ADDR,
		 E820_TYPE_RESERVED);
	e820_add(out, &n, X86_HIMEM_START, ram[0].size - X86_HIMEM_START, E820_TYPE_RAM);
	/* So the guest never places anything over the PCI configuration window. */
	e820_add(out, &n, X86_PCI_ECAM_BASE, X86_PCI_ECAM_SIZE, E820_TYPE_RESERVED);
	e820_add(out, &n, X86_VIRTIO_MMIO_BASE, X86_VIRTIO_MMIO_SIZE, E820_TYPE_RESERVED);
	if (nr_ram == 2)
		e820_add(out, &n, ram[1].gpa, ram[1].size, E820_TYPE_RAM);
	return n;
}
