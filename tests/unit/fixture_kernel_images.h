/* Crafted kernel images for the loader tests: a bzImage and a vmlinux-like ELF, each from a spec.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/boot.h"

struct bz_spec {
	uint16_t version;
	uint16_t xloadflags;
	uint8_t loadflags;
	uint8_t setup_sects;
	uint8_t relocatable;
	uint32_t pm_size;
	uint32_t init_size;
	uint32_t kernel_alignment;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size;
	char magic[4];
};

#define ELF_PADDR 0x1000000ULL /* where x86-64 vmlinux segments load */
#define ELF_DATA_OFF 0x1000
#define ELF_NOTES_OFF 0x200
#define ELF_PVH_ENTRY (ELF_PADDR + 0x40)

struct elf_spec {
	uint16_t machine;
	uint8_t class;
	bool pvh;
	uint32_t pvh_descsz; /* 4 or 8 */
	uint64_t paddr;
	uint64_t filesz;
	uint64_t memsz;
	uint64_t offset; /* of the PT_LOAD data */
};

struct bz_spec bz_default(void);
size_t bz_setup_len(const struct bz_spec *s);
uint8_t *make_bzimage(const struct bz_spec *s, size_t *len);
int load_bz(const struct bz_spec *s, const char *cmdline, const uint8_t *initrd, size_t initrd_len,
	    struct x86_boot *out);

struct elf_spec elf_default(void);
uint8_t *make_elf(const struct elf_spec *s, size_t *len);
int load_elf(const struct elf_spec *s, const char *cmdline, const uint8_t *initrd,
	     size_t initrd_len, struct x86_boot *out);
