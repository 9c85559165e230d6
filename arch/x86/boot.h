/*
 * x86 guest memory map and kernel loaders. Both loaders validate the image completely before
 * writing guest memory and report a one-line reason on failure.
 */
#ifndef KESTREL_X86_BOOT_H
#define KESTREL_X86_BOOT_H

#include <asm/bootparam.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/arch.h"
#include "vmm/error.h"
#include "vmm/guest_mem.h"

/* RAM regions for ram_size bytes: [0, min(ram,3G)) and, above 3 GiB, the rest at 4 GiB. */
int x86_ram_layout(uint64_t ram_size, struct guest_mem_region out[2]);

/* The e820 map for that RAM (base memory, EBDA/BIOS reserved, high RAM); returns the count. */
int x86_build_e820(uint64_t ram_size, struct boot_e820_entry *out, int max);

enum x86_entry_mode {
	X86_ENTRY_LINUX64, /* 64-bit long mode, paging on, RSI = boot_params */
	X86_ENTRY_PVH,	   /* 32-bit protected mode, paging off, EBX = hvm_start_info */
};

struct x86_boot {
	enum x86_entry_mode mode;
	uint64_t entry;	   /* guest-physical entry point */
	uint64_t info_gpa; /* boot_params or hvm_start_info */
	char note[160];	   /* how the kernel was loaded, for -v (may be empty) */
};

struct x86_boot_config {
	const uint8_t *kernel;
	size_t kernel_len;
	const uint8_t *initrd; /* may be NULL */
	size_t initrd_len;
	const char *cmdline;
	uint64_t acpi_rsdp;   /* the RSDP's address for boot_params / hvm_start_info; 0: none */
	bool unpack_in_guest; /* a bzImage decompresses itself, even when kestrel could */
	const struct arch_unpack_cache *cache; /* unpacked kernels on disk; NULL: none */
};

/* Detects the format (bzImage or ELF) and loads it; "not a kernel" errors name the reason. */
int x86_load_kernel(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		    struct x86_boot *out, struct kerr *err);
int x86_load_bzimage(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		     struct x86_boot *out, struct kerr *err);
int x86_load_elf(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		 struct x86_boot *out, struct kerr *err);

#endif
