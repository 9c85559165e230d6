/*
 * arm64 boot (Documentation/arch/arm64/booting.rst): the Image loader, and where the DTB and
 * initrd go. Every check runs before guest memory is written, with a one-line reason.
 */
#ifndef KESTREL_ARM64_BOOT_H
#define KESTREL_ARM64_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/guest_mem.h"

#define ARM64_IMAGE_MAGIC 0x644d5241u /* "ARM\x64", at byte 56 of the header */
#define ARM64_IMAGE_HEADER_LEN 64
#define ARM64_KERNEL_ALIGN 0x200000ULL	 /* the Image goes text_offset after a 2 MiB boundary */
#define ARM64_DTB_MAX 0x200000ULL	 /* the protocol's limit on the DTB's size */
#define ARM64_TEXT_OFFSET_OLD 0x80000ULL /* kernels with image_size 0 (before 3.17) */

struct arm64_kernel {
	uint64_t entry;	     /* = load address: the first instruction of the Image */
	uint64_t end;	     /* first byte after what the kernel claims (image_size or the file) */
	uint64_t file_bytes; /* bytes of Image written (after decompression) */
};

/*
 * Loads an Image (or a gzip-compressed one) into RAM [ram_base, ram_base + ram_size):
 * text_offset after the first 2 MiB boundary at or above ram_base. Fails on a short or
 * foreign header, a big-endian kernel, or a kernel that does not fit.
 */
int arm64_load_image(const struct guest_mem *gm, uint64_t ram_base, uint64_t ram_size,
		     const uint8_t *data, size_t len, struct arm64_kernel *out, struct kerr *err);

/* Where the DTB and the initrd go: at the top of RAM, above the kernel, 2 MiB / 4 KiB aligned. */
struct arm64_placement {
	uint64_t dtb;
	uint64_t initrd; /* 0 without one */
};
int arm64_place(uint64_t ram_base, uint64_t ram_size, const struct arm64_kernel *k, size_t dtb_len,
		size_t initrd_len, struct arm64_placement *out, struct kerr *err);

#endif
