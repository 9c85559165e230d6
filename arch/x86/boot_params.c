/*
 * What both loaders share: where the command line and the initrd go, and the fields of the
 * Linux zero page (boot_params) that the boot loader, not the kernel image, provides.
 */
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/boot_priv.h"
#include "arch/x86/layout.h"

#define BP_LOADER_UNDEFINED 0xff /* type_of_loader: no assigned boot loader ID */
#define BP_HEAP_END 0xfe00	 /* setup heap end, relative to the real-mode segment */

static double mib(uint64_t bytes)
{
	return (double)bytes / (1 << 20);
}

static int plan_initrd(const struct guest_mem *gm, uint64_t kernel_end, uint32_t initrd_addr_max,
		       struct x86_boot_extras *ex, struct kerr *err)
{
	uint64_t low_end = gm->ram_size < X86_PCI_HOLE_START ? gm->ram_size : X86_PCI_HOLE_START;
	uint64_t limit = (uint64_t)initrd_addr_max + 1;
	uint64_t floor, addr;

	if (limit > low_end)
		limit = low_end;
	if (!x86_align_up(kernel_end, X86_PAGE_SIZE, &floor))
		floor = UINT64_MAX;
	if (ex->initrd_len > limit || floor > limit ||
	    ((limit - ex->initrd_len) & ~(X86_PAGE_SIZE - 1)) < floor)
		return kerr_set(err,
				"initrd of %.1f MiB does not fit below 0x%llx (the kernel ends at "
				"0x%llx, initrd_addr_max is 0x%x): give the guest more memory",
				mib(ex->initrd_len), (unsigned long long)limit,
				(unsigned long long)kernel_end, initrd_addr_max);
	addr = (limit - ex->initrd_len) & ~(X86_PAGE_SIZE - 1);
	/* Only fails for a memory map x86_ram_layout did not make. */
	if (!guest_mem_ptr(gm, addr, ex->initrd_len))
		return kerr_set(err, "initrd at 0x%llx (%.1f MiB) is not in guest RAM",
				(unsigned long long)addr, mib(ex->initrd_len));
	ex->initrd_gpa = addr;
	return 0;
}

int x86_plan_extras(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		    uint64_t cmdline_max, uint64_t kernel_end, uint32_t initrd_addr_max,
		    struct x86_boot_extras *ex, struct kerr *err)
{
	memset(ex, 0, sizeof(*ex));
	ex->cmdline = cfg->cmdline ? cfg->cmdline : "";
	ex->cmdline_len = strlen(ex->cmdline);
	ex->acpi_rsdp = cfg->acpi_rsdp;

	if (cmdline_max > X86_CMDLINE_MAX - 1)
		cmdline_max = X86_CMDLINE_MAX - 1;
	if (ex->cmdline_len > cmdline_max)
		return kerr_set(
		    err, "kernel command line is %zu bytes but the kernel accepts at most %llu",
		    ex->cmdline_len, (unsigned long long)cmdline_max);
	if (!guest_mem_ptr(gm, X86_CMDLINE_ADDR, ex->cmdline_len + 1))
		return kerr_set(err, "guest RAM is too small for the kernel command line");

	/* An empty initrd file is the same as none. */
	if (!cfg->initrd || cfg->initrd_len == 0)
		return 0;
	ex->initrd = cfg->initrd;
	ex->initrd_len = cfg->initrd_len;
	return plan_initrd(gm, kernel_end, initrd_addr_max, ex, err);
}

void x86_write_extras(const struct guest_mem *gm, const struct x86_boot_extras *ex)
{
	/* Both ranges were checked by x86_plan_extras. */
	guest_mem_write(gm, X86_CMDLINE_ADDR, ex->cmdline, ex->cmdline_len + 1);
	if (ex->initrd_len)
		guest_mem_write(gm, ex->initrd_gpa, ex->initrd, ex->initrd_len);
}

int x86_fill_boot_params(const struct guest_mem *gm, const struct x86_boot_extras *ex,
			 struct boot_params *bp, struct kerr *err)
{
	struct setup_header *h = &bp->hdr;
	int n;

	if (!guest_mem_ptr(gm, X86_BOOT_PARAMS_ADDR, sizeof(*bp)))
		return kerr_set(err, "guest RAM is too small for the Linux boot parameters");
	n = x86_build_e820(gm->ram_size, bp->e820_table, E820_MAX_ENTRIES_ZEROPAGE);
	if (n < 0)
		return kerr_set(err, "cannot build an e820 map for %llu MiB of guest RAM",
				(unsigned long long)(gm->ram_size >> 20));
	bp->e820_entries = (uint8_t)n;

	h->type_of_loader = BP_LOADER_UNDEFINED;
	h->loadflags |= CAN_USE_HEAP;
	h->heap_end_ptr = BP_HEAP_END;
	h->setup_data = 0; /* no setup_data chain */
	h->cmd_line_ptr = (uint32_t)X86_CMDLINE_ADDR;
	bp->ext_cmd_line_ptr = 0;
	h->ramdisk_image = (uint32_t)ex->initrd_gpa;
	h->ramdisk_size = (uint32_t)ex->initrd_len;
	bp->ext_ramdisk_image = (uint32_t)(ex->initrd_gpa >> 32);
	bp->ext_ramdisk_size = (uint32_t)(ex->initrd_len >> 32);
	bp->acpi_rsdp_addr = ex->acpi_rsdp;
	return 0;
}
