/*
 * A bzImage whose payload is an xz-compressed vmlinux: kestrel decompresses it on the host
 * (arch/x86/boot_unpack.c) and enters the ELF, or falls back to letting the bzImage
 * decompress itself. The payloads are made here with liblzma, with the kernel's filter chain
 * (x86 BCJ, then LZMA2) and its CRC32 check.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "fixture_kernel_images.h"
#include "fixture_loaders.h"
#include "fixture_unpack.h"
#include "vmm/kernel_cache.h"

TestSuite(unpack, .init = map_ram, .fini = unmap_ram);

Test(unpack, xz_payload_is_unpacked_and_entered_pvh)
{
	struct kernel k;
	struct x86_boot out;
	const struct hvm_start_info *si;

	make_kernel(&k, default_segs, 2, true);
	/* The bss must be written as zero, not merely left so. */
	memset(gp(SEG1_PADDR + 0x3000, 0x4000), 0xa5, 0x4000);
	cr_assert_eq(load(&k, "console=ttyS0", false, &out), 0, "%s", err.msg);
	cr_log_info("%s", out.note);
	cr_assert_not_null(strstr(out.note, "xz payload unpacked on the host"), "note: %s",
			   out.note);
	cr_assert_eq(out.mode, X86_ENTRY_PVH);
	cr_assert_eq(out.entry, PVH_ENTRY);
	cr_assert_eq(out.info_gpa, X86_PVH_INFO_ADDR);
	check_segments(&k, default_segs, 2);
	si = (const struct hvm_start_info *)gp(X86_PVH_INFO_ADDR, sizeof(*si));
	cr_assert_eq(si->magic, PVH_START_MAGIC);
	cr_assert_str_eq((char *)gp(X86_CMDLINE_ADDR, 14), "console=ttyS0");
	/* Nothing of the bzImage itself at 1 MiB, nothing of the tail after the segments. */
	cr_assert(all_zero(gp(X86_HIMEM_START, MiB), MiB));
	cr_assert(all_zero(gp(SEG1_PADDR + 0x7000, MiB), MiB));
	free_kernel(&k);
}

Test(unpack, without_pvh_note_enters_64bit_with_the_bzimage_header)
{
	struct kernel k;
	struct x86_boot out;
	const struct boot_params *bp;

	make_kernel(&k, default_segs, 2, false);
	cr_assert_eq(load(&k, "quiet", false, &out), 0, "%s", err.msg);
	cr_assert_eq(out.mode, X86_ENTRY_LINUX64);
	cr_assert_eq(out.entry, SEG0_PADDR);
	cr_assert_eq(out.info_gpa, X86_BOOT_PARAMS_ADDR);
	check_segments(&k, default_segs, 2);
	bp = (const struct boot_params *)gp(X86_BOOT_PARAMS_ADDR, sizeof(*bp));
	cr_assert_eq(bp->hdr.version, 0x020f, "the zero page has the bzImage's setup header");
	cr_assert_eq(bp->hdr.cmdline_size, 2047);
	cr_assert_eq(bp->hdr.loadflags, LOADED_HIGH | CAN_USE_HEAP);
	cr_assert_eq(bp->hdr.cmd_line_ptr, X86_CMDLINE_ADDR);
	check_e820(bp->e820_table, bp->e820_entries);
	free_kernel(&k);
}

Test(unpack, the_bzimage_cmdline_limit_still_holds)
{
	struct kernel k;
	struct x86_boot out;
	char cmdline[2100];

	memset(cmdline, 'a', sizeof(cmdline) - 1);
	cmdline[sizeof(cmdline) - 1] = '\0';
	make_kernel(&k, default_segs, 2, true);
	assert_fails(load(&k, cmdline, false, &out), "accepts at most 2047");
	free_kernel(&k);
}

Test(unpack, kernel_unpack_guest_boots_the_bzimage)
{
	struct kernel k;
	struct x86_boot out;

	make_kernel(&k, default_segs, 2, true);
	cr_assert_eq(load(&k, NULL, true, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "--kernel-unpack guest"), "note: %s", out.note);
	check_old_path(&k, &out);
	free_kernel(&k);
}

Test(unpack, payload_not_xz_boots_the_bzimage)
{
	static const uint8_t gz[] = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4};
	struct kernel k = {0};
	struct x86_boot out;

	k.img = wrap(gz, sizeof(gz), 1000, 0, &k.img_len);
	cr_assert_eq(load(&k, NULL, false, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "payload is gzip, not xz"), "note: %s", out.note);
	check_old_path(&k, &out);
	free_kernel(&k);
}

Test(unpack, corrupt_xz_is_an_error)
{
	struct kernel k;
	struct x86_boot out;
	size_t setup = bz_setup_len(&(struct bz_spec){.setup_sects = 7});

	make_kernel(&k, default_segs, 2, true);
	/* A byte inside the LZMA2 data: decoding fails, or the CRC32 at the end does. */
	k.img[setup + PAYLOAD_OFF + k.xz_len / 2] ^= 0x55;
	assert_fails(load(&k, NULL, false, &out), "kernel image is corrupt: its xz payload");
	free_kernel(&k);
}

Test(unpack, truncated_xz_is_an_error)
{
	struct kernel k;
	struct x86_boot out;

	k.elf = make_vmlinux(default_segs, 2, true, &k.elf_len);
	k.xz = xz(k.elf, k.elf_len, &k.xz_len);
	/* payload_length says the stream stops halfway. */
	k.img = wrap(k.xz, k.xz_len, (uint32_t)k.elf_len, k.xz_len / 2, &k.img_len);
	assert_fails(load(&k, NULL, false, &out),
		     "kernel image is corrupt: its xz payload is cut off");
	free_kernel(&k);
}

Test(unpack, segments_out_of_file_order_fall_back)
{
	/* Segment 1 comes first in the program headers but later in the file. */
	const struct seg segs[2] = {default_segs[1], default_segs[0]};
	struct kernel k;
	struct x86_boot out;

	make_kernel(&k, segs, 2, true);
	cr_assert_eq(load(&k, NULL, false, &out), 0, "%s", err.msg);
	cr_log_info("%s", out.note);
	cr_assert_not_null(strstr(out.note, "not in file order"), "note: %s", out.note);
	check_old_path(&k, &out);
	free_kernel(&k);
}

Test(unpack, segment_outside_ram_falls_back)
{
	struct seg segs[2] = {default_segs[0], default_segs[1]};
	struct kernel k;
	struct x86_boot out;

	segs[1].paddr = RAM_SIZE - 0x1000; /* its 0x7000 bytes run past the end of RAM */
	make_kernel(&k, segs, 2, true);
	cr_assert_eq(load(&k, NULL, false, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "outside guest RAM"), "note: %s", out.note);
	check_old_path(&k, &out);
	free_kernel(&k);
}

Test(unpack, xz_that_is_not_an_elf_falls_back)
{
	struct kernel k;
	struct x86_boot out;
	uint8_t *junk = pattern(0x8000, 5);

	k.elf = NULL;
	k.xz = xz(junk, 0x8000, &k.xz_len);
	k.img = wrap(k.xz, k.xz_len, 0x8000, 0, &k.img_len);
	cr_assert_eq(load(&k, NULL, false, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "not an ELF"), "note: %s", out.note);
	check_old_path(&k, &out);
	free(junk);
	free_kernel(&k);
}

Test(unpack, elf_cut_short_inside_a_segment_falls_back)
{
	struct kernel k;
	struct x86_boot out;

	k.elf = make_vmlinux(default_segs, 2, true, &k.elf_len);
	/* A sound xz stream of an ELF that ends in its second segment. */
	k.xz = xz(k.elf, default_segs[1].off + 0x100, &k.xz_len);
	k.img = wrap(k.xz, k.xz_len, (uint32_t)k.elf_len, 0, &k.img_len);
	cr_assert_eq(load(&k, NULL, false, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "ends inside segment"), "note: %s", out.note);
	check_old_path(&k, &out);
	free_kernel(&k);
}

/* A segment that starts among the first 4 KiB (read with the headers) and a note in a gap. */
Test(unpack, segment_in_the_header_bytes_and_note_in_a_gap)
{
	const struct seg segs[2] = {
	    {0x100, SEG0_PADDR, 0x2000, 0x2800}, /* ends at 0x2100, before the note */
	    default_segs[1],
	};
	struct kernel k;
	struct x86_boot out;

	make_kernel(&k, segs, 2, true);
	cr_assert_eq(load(&k, NULL, false, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "unpacked on the host"), "note: %s", out.note);
	cr_assert_eq(out.mode, X86_ENTRY_PVH);
	cr_assert_eq(out.entry, PVH_ENTRY);
	check_segments(&k, segs, 2);
	free_kernel(&k);
}

/* The cache of unpacked kernels (vmm/kernel_cache.c): a fresh KESTREL_CACHE_DIR per test. */
