/*
 * Helpers shared by the x86 kernel loaders (not part of the public boot API). The loaders
 * work in two steps: first everything is checked and placed (nothing written), then written.
 */
#ifndef KESTREL_X86_BOOT_PRIV_H
#define KESTREL_X86_BOOT_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/boot.h"

/* e820 / ACPI address range types (the UAPI has no current header for them). */
#define E820_TYPE_RAM 1
#define E820_TYPE_RESERVED 2
#define E820_TYPE_ACPI 3 /* ACPI tables, reclaimable once read */

#define X86_PAGE_SIZE 0x1000ULL
#define X86_RAM_MIN (16ULL << 20) /* below this even a tiny kernel has no room to decompress */
#define X86_E820_MAX 10		  /* x86_build_e820 never makes more than 8 entries */

/* Rounds v up to a power-of-two a; false if that would wrap past 2^64. */
static inline bool x86_align_up(uint64_t v, uint64_t a, uint64_t *out)
{
	if (v > UINT64_MAX - (a - 1))
		return false;
	*out = (v + a - 1) & ~(a - 1);
	return true;
}

/* Where the command line and the initrd go. */
struct x86_boot_extras {
	const char *cmdline;
	size_t cmdline_len; /* without the NUL */
	const uint8_t *initrd;
	uint64_t initrd_len; /* 0: no initrd */
	uint64_t initrd_gpa;
	uint64_t acpi_rsdp; /* 0: none */
};

/*
 * Checks the command line against cmdline_max (bytes without the NUL) and places the initrd at
 * the highest page below min(initrd_addr_max + 1, end of low RAM) that stays above kernel_end.
 * Writes nothing.
 */
int x86_plan_extras(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		    uint64_t cmdline_max, uint64_t kernel_end, uint32_t initrd_addr_max,
		    struct x86_boot_extras *ex, struct kerr *err);

/* Copies the command line and initrd where x86_plan_extras put them. */
void x86_write_extras(const struct guest_mem *gm, const struct x86_boot_extras *ex);

/*
 * Completes a zero page whose setup header (bp->hdr) the caller already filled: loader
 * fields, command line, initrd, e820. Checks the zero page fits in RAM; writes nothing.
 */
int x86_fill_boot_params(const struct guest_mem *gm, const struct x86_boot_extras *ex,
			 struct boot_params *bp, struct kerr *err);

#endif
