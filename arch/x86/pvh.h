/*
 * The PVH boot ABI: what a kernel with an XEN_ELFNOTE_PHYS32_ENTRY note expects in EBX when it
 * is entered in 32-bit protected mode with paging off. Written from the documented layout of
 * hvm_start_info (version 1); all addresses are guest-physical, and 0 means "not present".
 */
#ifndef KESTREL_X86_PVH_H
#define KESTREL_X86_PVH_H

#include <stddef.h>
#include <stdint.h>

#define PVH_ELFNOTE_NAME "Xen" /* the note's name, NUL included: namesz 4 */
#define PVH_ELFNOTE_PHYS32_ENTRY 18
#define PVH_START_MAGIC 0x336ec578U /* "xEn3" with the 0x80 bit of the "E" set */
#define PVH_START_VERSION 1	    /* version 1 adds memmap_paddr/memmap_entries */

/* Memory map types: the same numbers as e820 / ACPI address range types. */
#define PVH_MEMMAP_TYPE_RAM 1
#define PVH_MEMMAP_TYPE_RESERVED 2

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr; /* array of struct hvm_modlist_entry */
	uint64_t cmdline_paddr; /* NUL-terminated */
	uint64_t rsdp_paddr;	/* 0: the guest scans for the RSDP itself */
	uint64_t memmap_paddr;	/* array of struct hvm_memmap_table_entry */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/* The ABI is fixed: catch any padding surprise at compile time. */
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info layout");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "hvm_start_info layout");
_Static_assert(offsetof(struct hvm_start_info, memmap_entries) == 48, "hvm_start_info layout");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry layout");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry layout");

#endif
