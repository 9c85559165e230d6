/*
 * Helpers shared by the x86 kernel loaders (not part of the public boot API). The loaders
 * work in two steps: first everything is checked and placed (nothing written), then written.
 */
#ifndef KESTREL_X86_BOOT_PRIV_H
#define KESTREL_X86_BOOT_PRIV_H

#include <elf.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/boot.h"
#include "arch/x86/pvh.h"

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

/*
 * An ELF vmlinux being loaded: the whole file (x86_load_elf), or, when the ELF streams out of
 * a decompressor (boot_unpack.c), only its first len bytes, with file_len UINT64_MAX until the
 * end is known.
 */
struct x86_elf {
	const uint8_t *img;
	size_t len;	   /* bytes readable at img */
	uint64_t file_len; /* the file's size, for the bounds checks */
	Elf64_Ehdr eh;
	uint64_t kernel_end; /* end of the highest PT_LOAD */
	bool pvh;
	uint64_t pvh_entry;
	int fd; /* >= 0: img is also at offset fd_off of this file (guest_mem_place) */
	uint64_t fd_off;
};

/* Checks the ELF header; the program headers must lie in the len bytes at img. */
int x86_elf_check_ehdr(struct x86_elf *e, struct kerr *err);
void x86_elf_read_phdr(const struct x86_elf *e, int i, Elf64_Phdr *ph);
/*
 * Checks every program header against file_len and guest RAM, finds kernel_end, and reads the
 * PT_NOTEs whose bytes are at img (the others are the caller's, through x86_elf_find_pvh_note).
 */
int x86_elf_check_phdrs(const struct guest_mem *gm, struct x86_elf *e, struct kerr *err);
/* Looks through PT_NOTE segment idx (its size bytes at notes) for Xen's PVH entry note. */
int x86_elf_find_pvh_note(struct x86_elf *e, int idx, const uint8_t *notes, uint64_t size,
			  struct kerr *err);

/* The PVH page: hvm_start_info, then its memory map and module list. */
struct x86_pvh_page {
	struct hvm_start_info info;
	struct hvm_memmap_table_entry memmap[X86_E820_MAX];
	struct hvm_modlist_entry mod;
};

/* What an ELF kernel gets besides its segments, checked and built but not yet written. */
struct x86_elf_plan {
	struct x86_boot_extras ex;
	uint64_t entry;
	struct x86_pvh_page pg; /* e->pvh */
	struct boot_params bp;	/* !e->pvh */
};

/*
 * Places command line and initrd above the kernel, within what hdr (the setup header of the
 * bzImage the ELF came out of) accepts, or an ELF vmlinux's limits when hdr is NULL. No writes.
 */
int x86_elf_plan_extras(const struct guest_mem *gm, const struct x86_boot_config *cfg,
			const struct x86_elf *e, const struct setup_header *hdr,
			struct x86_boot_extras *ex, struct kerr *err);
/*
 * Checks the entry point, plans the extras, builds the start info (a zero page starting from
 * hdr when there is one); no writes.
 */
int x86_elf_plan(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		 const struct x86_elf *e, const struct setup_header *hdr, struct x86_elf_plan *p,
		 struct kerr *err);
/* Writes what x86_elf_plan built (not the segments) and fills out; cannot fail. */
void x86_elf_commit(const struct guest_mem *gm, const struct x86_elf *e,
		    const struct x86_elf_plan *p, struct x86_boot *out);
/*
 * Loads a whole ELF (e: img, len, file_len, fd, fd_off set) with hdr as for x86_elf_plan:
 * checks everything, then writes the segments and what x86_elf_plan built; -1: a check
 * failed and nothing was written.
 */
int x86_elf_load(const struct guest_mem *gm, const struct x86_boot_config *cfg, struct x86_elf *e,
		 const struct setup_header *hdr, struct x86_boot *out, struct kerr *err);

/*
 * A bzImage's payload (payload bytes at payload, hdr its checked setup header): if it is xz,
 * decompresses it on the host and loads the ELF inside (boot_unpack.c). Returns 0 when the
 * kernel is loaded, 1 when the bzImage should boot the usual way (out->note says why), -1 on
 * an error (a corrupt payload).
 */
int x86_unpack_bzimage(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		       const struct setup_header *hdr, const uint8_t *payload, size_t len,
		       struct x86_boot *out, struct kerr *err);

#endif
