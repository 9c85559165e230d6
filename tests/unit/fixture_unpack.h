/*
 * Kernels for the host-unpack tests: a vmlinux.bin-like ELF, xz-compressed with the kernel's
 * filter chain (x86 BCJ, then LZMA2) and its CRC32 check, wrapped in a bzImage; and the
 * loader called on them (test_loaders_unpack.c, test_kernel_cache.c).
 */
#ifndef KESTREL_FIXTURE_UNPACK_H
#define KESTREL_FIXTURE_UNPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/boot.h"
#include "vmm/kernel_cache.h"

#define SEG0_PADDR (16 * MiB)
#define SEG1_PADDR (20 * MiB)
#define PVH_ENTRY (SEG0_PADDR + 0x123)
#define PAYLOAD_OFF 0x100 /* inside the protected-mode part, like a real bzImage's */
#define NOTE_OFF 0x4800	  /* in segment 0, beyond the first 4 KiB */

struct seg {
	uint64_t off, paddr, filesz, memsz;
};

/* Two segments like vmlinux's text and data+bss, a gap, a note inside the text, a tail. */
extern const struct seg default_segs[2];

struct kernel {
	uint8_t *elf, *xz, *img;
	size_t elf_len, xz_len, img_len;
};

uint8_t seg_byte(int s, uint64_t i);
/* A vmlinux.bin-like ELF: PT_LOADs, a PT_NOTE (PVH entry if pvh), GNU_STACK, tail bytes. */
uint8_t *make_vmlinux(const struct seg *segs, int n, bool pvh, size_t *len);
/* xz as the kernel's build makes it: x86 BCJ + LZMA2, CRC32. */
uint8_t *xz(const uint8_t *in, size_t len, size_t *out_len);
/*
 * A bzImage whose protected-mode part holds payload (plus the 4-byte output size the kernel's
 * build appends) at PAYLOAD_OFF; payload_length claims claim bytes (0: the real length).
 */
uint8_t *wrap(const uint8_t *payload, size_t len, uint32_t out_size, size_t claim, size_t *img_len);
void make_kernel(struct kernel *k, const struct seg *segs, int n, bool pvh);
void free_kernel(struct kernel *k);
int load_cached(const struct kernel *k, const char *cmdline, bool in_guest, struct kernel_cache *kc,
		struct x86_boot *out);
int load(const struct kernel *k, const char *cmdline, bool in_guest, struct x86_boot *out);
/* The segments are in guest RAM at their addresses, their bss zero. */
void check_segments(const struct kernel *k, const struct seg *segs, int n);
/* Booted the old way: the protected-mode part at 1 MiB, entered at startup_64. */
void check_old_path(const struct kernel *k, const struct x86_boot *out);

#endif
