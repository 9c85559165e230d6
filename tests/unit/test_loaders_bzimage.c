/* The bzImage loader against crafted images; every rejected image leaves guest RAM untouched. */
#include <criterion/criterion.h>
#include <elf.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "fixture_kernel_images.h"
#include "fixture_loaders.h"

TestSuite(bzimage, .init = map_ram, .fini = unmap_ram);

Test(bzimage, valid_image_is_loaded)
{
	struct bz_spec s = bz_default();
	const char *cmdline = "console=ttyS0 root=/dev/vda rw";
	size_t initrd_len = MiB + 123;
	uint8_t *initrd = pattern(initrd_len, 3);
	size_t len;
	uint8_t *img = make_bzimage(&s, &len);
	struct x86_boot_config cfg = {img, len, initrd, initrd_len, cmdline, 0, false, NULL};
	struct x86_boot out;
	struct boot_params *bp;
	uint64_t rd, kernel_end = 2 * MiB + s.init_size;

	cr_assert_eq(x86_load_bzimage(&gm, &cfg, &out, &err), 0, "%s", err.msg);
	cr_assert_eq(out.mode, X86_ENTRY_LINUX64);
	cr_assert_eq(out.entry, X86_HIMEM_START + 0x200);
	cr_assert_eq(out.info_gpa, X86_BOOT_PARAMS_ADDR);

	/* The protected-mode part, byte for byte, at 1 MiB. */
	cr_assert_eq(memcmp(gp(X86_HIMEM_START, s.pm_size), img + bz_setup_len(&s), s.pm_size), 0);

	bp = (struct boot_params *)gp(X86_BOOT_PARAMS_ADDR, sizeof(*bp));
	cr_assert_eq(bp->hdr.boot_flag, 0xaa55);
	cr_assert_eq(bp->hdr.header, 0x53726448);
	cr_assert_eq(bp->hdr.version, 0x020f);
	cr_assert_eq(bp->hdr.setup_sects, 7);
	cr_assert_eq(bp->hdr.init_size, s.init_size);
	cr_assert_eq(bp->hdr.xloadflags, s.xloadflags);
	cr_assert_eq(bp->hdr.vid_mode, 0xffff);
	cr_assert_eq(bp->hdr.type_of_loader, 0xff);
	cr_assert_eq(bp->hdr.loadflags, LOADED_HIGH | CAN_USE_HEAP);
	cr_assert_eq(bp->hdr.heap_end_ptr, 0xfe00);
	cr_assert_eq(bp->hdr.cmd_line_ptr, X86_CMDLINE_ADDR);
	cr_assert_eq(bp->ext_cmd_line_ptr, 0);
	cr_assert_eq(bp->hdr.setup_data, 0);
	cr_assert_eq(bp->sentinel, 0);
	cr_assert_str_eq((char *)gp(X86_CMDLINE_ADDR, strlen(cmdline) + 1), cmdline);
	check_e820(bp->e820_table, bp->e820_entries);

	rd = bp->hdr.ramdisk_image | (uint64_t)bp->ext_ramdisk_image << 32;
	cr_assert_eq(bp->hdr.ramdisk_size, initrd_len);
	cr_assert_eq(bp->ext_ramdisk_size, 0);
	cr_assert_eq(rd % PAGE, 0, "initrd at 0x%llx is not page-aligned", (unsigned long long)rd);
	cr_assert_geq(rd, kernel_end, "initrd overlaps the decompressing kernel");
	cr_assert_leq(rd + initrd_len, RAM_SIZE);
	cr_assert_leq(rd + initrd_len - 1, s.initrd_addr_max);
	cr_assert_eq(rd, (RAM_SIZE - initrd_len) & ~(PAGE - 1),
		     "initrd is not as high as it can be");
	cr_assert_eq(memcmp(gp(rd, initrd_len), initrd, initrd_len), 0);
	free(img);
	free(initrd);
}

Test(bzimage, initrd_stays_below_initrd_addr_max)
{
	struct bz_spec s = bz_default();
	size_t initrd_len = 3 * MiB + 5;
	uint8_t *initrd = pattern(initrd_len, 9);
	struct x86_boot out;
	struct boot_params *bp;

	s.initrd_addr_max = 32 * MiB - 1;
	cr_assert_eq(load_bz(&s, NULL, initrd, initrd_len, &out), 0, "%s", err.msg);
	bp = (struct boot_params *)gp(X86_BOOT_PARAMS_ADDR, sizeof(*bp));
	cr_assert_eq(bp->hdr.ramdisk_image % PAGE, 0);
	cr_assert_leq(bp->hdr.ramdisk_image + initrd_len, 32 * MiB);
	cr_assert_gt(bp->hdr.ramdisk_image + initrd_len, 32 * MiB - PAGE);
	cr_assert_eq(memcmp(gp(bp->hdr.ramdisk_image, initrd_len), initrd, initrd_len), 0);
	/* No command line is an empty one. */
	cr_assert_eq(*gp(X86_CMDLINE_ADDR, 1), 0);
	cr_assert_eq(bp->hdr.cmd_line_ptr, X86_CMDLINE_ADDR);
	free(initrd);
}

Test(bzimage, no_initrd)
{
	struct bz_spec s = bz_default();
	struct x86_boot out;
	struct boot_params *bp;

	cr_assert_eq(load_bz(&s, "quiet", NULL, 0, &out), 0, "%s", err.msg);
	bp = (struct boot_params *)gp(X86_BOOT_PARAMS_ADDR, sizeof(*bp));
	cr_assert_eq(bp->hdr.ramdisk_image, 0);
	cr_assert_eq(bp->hdr.ramdisk_size, 0);
}

Test(bzimage, setup_sects_zero_means_four)
{
	struct bz_spec s = bz_default();
	size_t len;
	uint8_t *img;
	struct x86_boot out;

	s.setup_sects = 0;
	img = make_bzimage(&s, &len);
	cr_assert_eq(len, 5 * 512 + s.pm_size);
	struct x86_boot_config cfg = {.kernel = img, .kernel_len = len};
	cr_assert_eq(x86_load_bzimage(&gm, &cfg, &out, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(gp(X86_HIMEM_START, s.pm_size), img + 5 * 512, s.pm_size), 0);
	free(img);
}

Test(bzimage, truncated_header)
{
	struct bz_spec s = bz_default();
	size_t len;
	uint8_t *img = make_bzimage(&s, &len);
	struct x86_boot out;
	struct x86_boot_config cfg = {.kernel = img};

	cfg.kernel_len = 0x100;
	assert_fails(x86_load_bzimage(&gm, &cfg, &out, &err), "kernel image is truncated");
	/* Past the magic and version, but the header itself is cut. */
	cfg.kernel_len = 0x240;
	assert_fails(x86_load_bzimage(&gm, &cfg, &out, &err), "kernel image is truncated");
	cfg.kernel_len = 0x240;
	assert_fails(x86_load_kernel(&gm, &cfg, &out, &err), "kernel image is truncated");
	free(img);
}

Test(bzimage, truncated_protected_mode_part)
{
	struct bz_spec s = bz_default();
	size_t len;
	uint8_t *img = make_bzimage(&s, &len);
	struct x86_boot out;
	struct x86_boot_config cfg = {.kernel = img, .kernel_len = len - 1000};

	assert_fails(x86_load_bzimage(&gm, &cfg, &out, &err), "protected-mode code ends at byte");
	cr_assert_not_null(strstr(err.msg, "kernel image is truncated"), "%s", err.msg);
	/* Only the setup sectors are there. */
	cfg.kernel_len = bz_setup_len(&s);
	assert_fails(x86_load_bzimage(&gm, &cfg, &out, &err), "kernel image is truncated");
	free(img);
}

Test(bzimage, wrong_magic)
{
	struct bz_spec s = bz_default();
	struct x86_boot out;

	memcpy(s.magic, "HdrX", 4);
	assert_fails(load_bz(&s, NULL, NULL, 0, &out), "not a bzImage: missing HdrS magic");
}

Test(bzimage, wrong_boot_flag)
{
	struct bz_spec s = bz_default();
	size_t len;
	uint8_t *img = make_bzimage(&s, &len);
	struct x86_boot out;
	struct x86_boot_config cfg = {.kernel = img, .kernel_len = len};

	img[0x1fe] = 0;
	assert_fails(x86_load_bzimage(&gm, &cfg, &out, &err), "not a bzImage");
	free(img);
}

Test(bzimage, protocol_too_old)
{
	struct bz_spec s = bz_default();
	struct x86_boot out;

	s.version = 0x0206;
	assert_fails(load_bz(&s, NULL, NULL, 0, &out),
		     "kernel boot protocol 2.06 is too old (kestrel needs 2.12 or later)");
	s.version = 0x020b;
	assert_fails(load_bz(&s, NULL, NULL, 0, &out), "2.11 is too old");
}

Test(bzimage, not_64bit)
{
	struct bz_spec s = bz_default();
	struct x86_boot out;

	s.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
	assert_fails(load_bz(&s, NULL, NULL, 0, &out),
		     "kernel is not 64-bit capable (XLF_KERNEL_64 clear)");
}

Test(bzimage, zimage_rejected)
{
	struct bz_spec s = bz_default();
	struct x86_boot out;

	s.loadflags = 0;
	assert_fails(load_bz(&s, NULL, NULL, 0, &out), "LOADED_HIGH");
}

Test(bzimage, bad_kernel_alignment)
{
	struct bz_spec s = bz_default();
	struct x86_boot out;

	s.kernel_alignment = 3 * MiB;
	assert_fails(load_bz(&s, NULL, NULL, 0, &out), "kernel_alignment");
}

Test(bzimage, cmdline_too_long)
{
	struct bz_spec s = bz_default();
	struct x86_boot out;
	char *big;

	s.cmdline_size = 16;
	cr_assert_eq(load_bz(&s, "0123456789abcdef", NULL, 0, &out), 0, "%s", err.msg);
	/* A fresh guest for the failing case. */
	unmap_ram();
	map_ram();
	assert_fails(load_bz(&s, "0123456789abcdefg", NULL, 0, &out),
		     "kernel command line is 17 bytes but the kernel accepts at most 16");

	/* The header allows more than kestrel's command line area holds. */
	s.cmdline_size = 0x7fffffff;
	big = malloc(X86_CMDLINE_MAX + 1);
	cr_assert_not_null(big);
	memset(big, 'a', X86_CMDLINE_MAX);
	big[X86_CMDLINE_MAX] = 0;
	assert_fails(load_bz(&s, big, NULL, 0, &out), "kernel command line is");
	free(big);
}

Test(bzimage, initrd_too_big)
{
	struct bz_spec s = bz_default();
	size_t initrd_len = 60 * MiB;
	uint8_t *initrd = calloc(1, initrd_len);
	struct x86_boot out;

	cr_assert_not_null(initrd);
	assert_fails(load_bz(&s, NULL, initrd, initrd_len, &out),
		     "initrd of 60.0 MiB does not fit below");
	/* Fits in RAM but not under initrd_addr_max above the kernel. */
	s.initrd_addr_max = 12 * MiB - 1;
	assert_fails(load_bz(&s, NULL, initrd, 4 * MiB, &out), "does not fit below 0xc00000");
	free(initrd);
}

Test(bzimage, kernel_larger_than_ram)
{
	struct bz_spec s = bz_default();
	struct x86_boot out;

	s.init_size = 80 * MiB;
	assert_fails(load_bz(&s, NULL, NULL, 0, &out), "too small for the kernel");
}
