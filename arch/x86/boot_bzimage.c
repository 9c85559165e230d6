/*
 * The Linux bzImage loader, 64-bit boot protocol (Documentation/arch/x86/boot.rst): the
 * protected-mode part is loaded at 1 MiB and entered at its startup_64, 0x200 bytes in, with
 * RSI pointing at a zero page holding the setup header, command line, initrd and e820 map.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/boot_priv.h"
#include "arch/x86/layout.h"

#define BZ_HDR_OFF 0x1f1       /* the setup header inside the file and inside boot_params */
#define BZ_BOOT_FLAG_OFF 0x1fe /* 0xAA55 */
#define BZ_JUMP_OFF 0x200      /* 2-byte jump; its offset byte gives the header's length */
#define BZ_MAGIC_OFF 0x202     /* "HdrS" */
#define BZ_VERSION_OFF 0x206
#define BZ_MIN_LEN (BZ_VERSION_OFF + 2)
/* Protocol 2.12 has every field up to init_size; later ones only add fields after it. */
#define BZ_HDR_MIN_END (BZ_HDR_OFF + offsetof(struct setup_header, init_size) + 4)
/* The zero page has room for the setup header up to here (edd_mbr_sig_buffer follows). */
#define BZ_HDR_MAX_END offsetof(struct boot_params, edd_mbr_sig_buffer)

#define BZ_BOOT_FLAG 0xaa55
#define BZ_MIN_VERSION 0x020c /* 2.12: the first with xloadflags, so XLF_KERNEL_64 is known */
#define BZ_SECTOR 512
#define BZ_DEFAULT_SETUP_SECTS 4
#define BZ_STARTUP_64 0x200 /* 64-bit entry, relative to the protected-mode load address */

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Checks the setup header and copies it into bp->hdr (the rest of bp is untouched). */
static int check_header(const uint8_t *img, size_t len, struct boot_params *bp, struct kerr *err)
{
	const struct setup_header *h = &bp->hdr;
	size_t hdr_end;
	uint16_t v;

	if (len < BZ_MIN_LEN)
		return kerr_set(
		    err,
		    "kernel image is truncated: a bzImage header needs %d bytes but the "
		    "file has %zu bytes",
		    BZ_MIN_LEN, len);
	if (le16(img + BZ_BOOT_FLAG_OFF) != BZ_BOOT_FLAG)
		return kerr_set(err, "not a bzImage: boot sector signature is 0x%04x, not 0xaa55",
				le16(img + BZ_BOOT_FLAG_OFF));
	if (memcmp(img + BZ_MAGIC_OFF, "HdrS", 4) != 0)
		return kerr_set(err, "not a bzImage: missing HdrS magic");
	v = le16(img + BZ_VERSION_OFF);
	if (v < BZ_MIN_VERSION)
		return kerr_set(
		    err, "kernel boot protocol %u.%02u is too old (kestrel needs 2.12 or later)",
		    v >> 8, v & 0xff);

	hdr_end = BZ_MAGIC_OFF + (size_t)img[BZ_JUMP_OFF + 1];
	if (hdr_end < BZ_HDR_MIN_END)
		return kerr_set(
		    err,
		    "bzImage setup header ends at byte 0x%zx, too short for boot protocol "
		    "%u.%02u",
		    hdr_end, v >> 8, v & 0xff);
	if (hdr_end > len)
		return kerr_set(
		    err,
		    "kernel image is truncated: the setup header ends at byte %zu but the "
		    "file has %zu bytes",
		    hdr_end, len);
	if (hdr_end > BZ_HDR_MAX_END)
		hdr_end = BZ_HDR_MAX_END;
	memcpy((uint8_t *)bp + BZ_HDR_OFF, img + BZ_HDR_OFF, hdr_end - BZ_HDR_OFF);

	if (!(h->xloadflags & XLF_KERNEL_64))
		return kerr_set(err, "kernel is not 64-bit capable (XLF_KERNEL_64 clear)");
	if (!(h->loadflags & LOADED_HIGH))
		return kerr_set(
		    err, "kernel is a zImage (LOADED_HIGH clear): only bzImages load at 1 MiB");
	if (h->init_size == 0)
		return kerr_set(err, "bzImage setup header has init_size 0");
	return 0;
}

/*
 * The end of the memory the kernel uses while it decompresses and moves itself: init_size
 * bytes from where it will run, and at least the loaded image itself.
 */
static int kernel_footprint(const struct setup_header *h, uint64_t load_addr, uint64_t pm_size,
			    uint64_t *end, struct kerr *err)
{
	uint64_t start, a = h->kernel_alignment;

	if (h->relocatable_kernel) {
		/* It moves itself up to the next kernel_alignment boundary. */
		if (a == 0 || (a & (a - 1)))
			return kerr_set(err,
					"bzImage kernel_alignment 0x%llx is not a power of two",
					(unsigned long long)a);
		if (!x86_align_up(load_addr, a, &start))
			return kerr_set(err, "bzImage kernel_alignment 0x%llx is out of range",
					(unsigned long long)a);
	} else {
		/* A non-relocatable kernel moves itself to pref_address unconditionally. */
		start = h->pref_address;
		if (start < X86_HIMEM_START)
			return kerr_set(
			    err,
			    "kernel is not relocatable and wants to run at 0x%llx, below "
			    "1 MiB",
			    (unsigned long long)start);
	}
	if (start > UINT64_MAX - h->init_size)
		return kerr_set(err, "bzImage pref_address 0x%llx is out of range",
				(unsigned long long)start);
	*end = start + h->init_size;
	if (*end < load_addr + pm_size)
		*end = load_addr + pm_size;
	return 0;
}

int x86_load_bzimage(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		     struct x86_boot *out, struct kerr *err)
{
	const uint8_t *img = cfg->kernel;
	size_t len = cfg->kernel_len;
	const uint64_t load_addr = X86_HIMEM_START;
	struct boot_params bp;
	struct x86_boot_extras ex;
	uint64_t setup_sects, pm_off, pm_end, pm_size, kernel_end = 0;
	int ret;

	out->note[0] = '\0';
	memset(&bp, 0, sizeof(bp));
	if (check_header(img, len, &bp, err) < 0)
		return -1;

	setup_sects = bp.hdr.setup_sects ? bp.hdr.setup_sects : BZ_DEFAULT_SETUP_SECTS;
	pm_off = (setup_sects + 1) * BZ_SECTOR;
	/* syssize counts 16-byte paragraphs; the file may carry more (a signature). */
	pm_end = pm_off + (uint64_t)bp.hdr.syssize * 16;
	if (pm_off >= len)
		return kerr_set(
		    err,
		    "kernel image is truncated: protected-mode code starts at byte %llu but "
		    "the file has %zu bytes",
		    (unsigned long long)pm_off, len);
	if (pm_end > len)
		return kerr_set(
		    err,
		    "kernel image is truncated: protected-mode code ends at byte %llu but "
		    "the file has %zu bytes",
		    (unsigned long long)pm_end, len);
	pm_size = len - pm_off;

	/* The payload (2.08+) is the compressed kernel, inside the protected-mode part. */
	if (cfg->unpack_in_guest)
		snprintf(out->note, sizeof(out->note),
			 "kernel: decompressed by the guest (--kernel-unpack guest)");
	else if (bp.hdr.payload_offset > pm_size ||
		 bp.hdr.payload_length > pm_size - bp.hdr.payload_offset)
		snprintf(out->note, sizeof(out->note),
			 "kernel: the bzImage's payload field is outside the file: decompressed by "
			 "the guest");
	else {
		ret = x86_unpack_bzimage(gm, cfg, &bp.hdr, img + pm_off + bp.hdr.payload_offset,
					 bp.hdr.payload_length, out, err);
		if (ret <= 0)
			return ret;
	}

	if (kernel_footprint(&bp.hdr, load_addr, pm_size, &kernel_end, err) < 0)
		return -1;
	if (!guest_mem_ptr(gm, load_addr, kernel_end - load_addr))
		return kerr_set(
		    err,
		    "guest RAM (%llu MiB) is too small for the kernel: it needs memory up "
		    "to 0x%llx",
		    (unsigned long long)(gm->ram_size >> 20), (unsigned long long)kernel_end);

	/* Protocol >= 2.03 always has initrd_addr_max, and we require 2.12. */
	if (x86_plan_extras(gm, cfg, bp.hdr.cmdline_size, kernel_end, bp.hdr.initrd_addr_max, &ex,
			    err) < 0)
		return -1;
	if (x86_fill_boot_params(gm, &ex, &bp, err) < 0)
		return -1;

	/* Everything is checked: from here on nothing can fail. */
	guest_mem_write(gm, load_addr, img + pm_off, pm_size);
	x86_write_extras(gm, &ex);
	guest_mem_write(gm, X86_BOOT_PARAMS_ADDR, &bp, sizeof(bp));

	out->mode = X86_ENTRY_LINUX64;
	out->entry = load_addr + BZ_STARTUP_64;
	out->info_gpa = X86_BOOT_PARAMS_ADDR;
	return 0;
}
