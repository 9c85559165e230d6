/* The ELF vmlinux loader (PVH note or 64-bit Linux boot) against crafted images. */
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

TestSuite(elf, .init = map_ram, .fini = unmap_ram);

static void check_segment(const struct elf_spec *s, const uint8_t *img)
{
	cr_assert_eq(memcmp(gp(s->paddr, s->filesz), img + ELF_DATA_OFF, s->filesz), 0);
	cr_assert(all_zero(gp(s->paddr + s->filesz, s->memsz - s->filesz), s->memsz - s->filesz),
		  "bss not zeroed");
}

Test(elf, pvh_note_gives_pvh_boot)
{
	struct elf_spec s = elf_default();
	const char *cmdline = "console=hvc0 init=/init";
	size_t initrd_len = 300 * 1024 + 1;
	uint8_t *initrd = pattern(initrd_len, 17);
	size_t len;
	uint8_t *img = make_elf(&s, &len);
	struct x86_boot_config cfg = {img, len, initrd, initrd_len, cmdline, 0, false, NULL};
	struct x86_boot out;
	struct hvm_start_info *si;
	struct hvm_memmap_table_entry *mm;
	struct hvm_modlist_entry *mod;
	struct boot_e820_entry e820[8];
	int n = x86_build_e820(RAM_SIZE, e820, 8);

	/* Stale bytes where the bss goes must be cleared. */
	memset(gp(s.paddr + s.filesz, s.memsz - s.filesz), 0xaa, s.memsz - s.filesz);

	cr_assert_eq(x86_load_elf(&gm, &cfg, &out, &err), 0, "%s", err.msg);
	cr_assert_eq(out.mode, X86_ENTRY_PVH);
	cr_assert_eq(out.entry, ELF_PVH_ENTRY);
	cr_assert_eq(out.info_gpa, X86_PVH_INFO_ADDR);
	check_segment(&s, img);

	si = (struct hvm_start_info *)gp(X86_PVH_INFO_ADDR, sizeof(*si));
	cr_assert_eq(si->magic, 0x336ec578);
	cr_assert_eq(si->version, 1);
	cr_assert_eq(si->flags, 0);
	cr_assert_eq(si->cmdline_paddr, X86_CMDLINE_ADDR);
	cr_assert_eq(si->rsdp_paddr, 0);
	cr_assert_str_eq((char *)gp(X86_CMDLINE_ADDR, strlen(cmdline) + 1), cmdline);

	/* The memory map and module list sit after it in the same page. */
	cr_assert_eq(si->memmap_entries, (uint32_t)n);
	cr_assert_geq(si->memmap_paddr, X86_PVH_INFO_ADDR + sizeof(*si));
	cr_assert_leq(si->memmap_paddr + n * sizeof(*mm), X86_PVH_INFO_ADDR + PAGE);
	cr_assert_eq(si->memmap_paddr % 8, 0);
	mm = (struct hvm_memmap_table_entry *)gp(si->memmap_paddr, n * sizeof(*mm));
	for (int i = 0; i < n; i++) {
		cr_assert_eq(mm[i].addr, e820[i].addr, "entry %d", i);
		cr_assert_eq(mm[i].size, e820[i].size, "entry %d", i);
		cr_assert_eq(mm[i].type, e820[i].type, "entry %d", i);
		cr_assert_eq(mm[i].reserved, 0);
	}

	cr_assert_eq(si->nr_modules, 1);
	cr_assert_geq(si->modlist_paddr, si->memmap_paddr + n * sizeof(*mm));
	cr_assert_leq(si->modlist_paddr + sizeof(*mod), X86_PVH_INFO_ADDR + PAGE);
	mod = (struct hvm_modlist_entry *)gp(si->modlist_paddr, sizeof(*mod));
	cr_assert_eq(mod->size, initrd_len);
	cr_assert_eq(mod->paddr % PAGE, 0);
	cr_assert_geq(mod->paddr, s.paddr + s.memsz, "initrd overlaps the kernel");
	cr_assert_leq(mod->paddr + initrd_len, RAM_SIZE);
	cr_assert_eq(mod->cmdline_paddr, 0);
	cr_assert_eq(memcmp(gp(mod->paddr, initrd_len), initrd, initrd_len), 0);

	/* No zero page on this path. */
	cr_assert(all_zero(gp(X86_BOOT_PARAMS_ADDR, PAGE), PAGE));
	free(img);
	free(initrd);
}

Test(elf, pvh_note_with_32bit_value)
{
	struct elf_spec s = elf_default();
	struct x86_boot out;
	struct hvm_start_info *si;

	s.pvh_descsz = 4;
	cr_assert_eq(load_elf(&s, NULL, NULL, 0, &out), 0, "%s", err.msg);
	cr_assert_eq(out.mode, X86_ENTRY_PVH);
	cr_assert_eq(out.entry, ELF_PVH_ENTRY);
	si = (struct hvm_start_info *)gp(X86_PVH_INFO_ADDR, sizeof(*si));
	cr_assert_eq(si->nr_modules, 0);
	cr_assert_eq(si->modlist_paddr, 0);
}

Test(elf, no_note_gives_linux64_boot)
{
	struct elf_spec s = elf_default();
	const char *cmdline = "console=ttyS0";
	size_t initrd_len = 2 * MiB;
	uint8_t *initrd = pattern(initrd_len, 1);
	size_t len;
	uint8_t *img;
	struct x86_boot out;
	struct boot_params *bp;

	s.pvh = false;
	img = make_elf(&s, &len);
	struct x86_boot_config cfg = {img, len, initrd, initrd_len, cmdline, 0, false, NULL};
	cr_assert_eq(x86_load_elf(&gm, &cfg, &out, &err), 0, "%s", err.msg);
	cr_assert_eq(out.mode, X86_ENTRY_LINUX64);
	cr_assert_eq(out.entry, ELF_PADDR);
	cr_assert_eq(out.info_gpa, X86_BOOT_PARAMS_ADDR);
	check_segment(&s, img);

	bp = (struct boot_params *)gp(X86_BOOT_PARAMS_ADDR, sizeof(*bp));
	cr_assert_eq(bp->hdr.boot_flag, 0xaa55);
	cr_assert_eq(bp->hdr.header, 0x53726448);
	cr_assert_eq(bp->hdr.version, 0x020c);
	cr_assert_eq(bp->hdr.type_of_loader, 0xff);
	cr_assert_eq(bp->hdr.loadflags, LOADED_HIGH | CAN_USE_HEAP);
	cr_assert_eq(bp->hdr.heap_end_ptr, 0xfe00);
	cr_assert_eq(bp->hdr.kernel_alignment, 0x1000000);
	cr_assert_eq(bp->hdr.cmdline_size, X86_CMDLINE_MAX - 1);
	cr_assert_eq(bp->hdr.cmd_line_ptr, X86_CMDLINE_ADDR);
	cr_assert_str_eq((char *)gp(X86_CMDLINE_ADDR, strlen(cmdline) + 1), cmdline);
	check_e820(bp->e820_table, bp->e820_entries);
	cr_assert_eq(bp->hdr.ramdisk_size, initrd_len);
	cr_assert_eq(bp->hdr.ramdisk_image % PAGE, 0);
	cr_assert_geq(bp->hdr.ramdisk_image, s.paddr + s.memsz);
	cr_assert_leq(bp->hdr.ramdisk_image + initrd_len, RAM_SIZE);
	cr_assert_eq(memcmp(gp(bp->hdr.ramdisk_image, initrd_len), initrd, initrd_len), 0);
	cr_assert(all_zero(gp(X86_PVH_INFO_ADDR, PAGE), PAGE), "no PVH info on this path");
	free(img);
	free(initrd);
}

Test(elf, truncated_ehdr)
{
	struct elf_spec s = elf_default();
	size_t len;
	uint8_t *img = make_elf(&s, &len);
	struct x86_boot out;
	struct x86_boot_config cfg = {.kernel = img, .kernel_len = 40};

	assert_fails(x86_load_elf(&gm, &cfg, &out, &err), "kernel image is truncated");
	assert_fails(x86_load_kernel(&gm, &cfg, &out, &err), "kernel image is truncated");
	free(img);
}

Test(elf, truncated_phdrs)
{
	struct elf_spec s = elf_default();
	size_t len;
	uint8_t *img = make_elf(&s, &len);
	struct x86_boot out;
	struct x86_boot_config cfg = {.kernel = img, .kernel_len = len};
	Elf64_Ehdr eh;

	/* The file ends in the middle of the second program header. */
	cfg.kernel_len = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + 10;
	assert_fails(x86_load_elf(&gm, &cfg, &out, &err), "kernel image is truncated");

	/* More program headers than the file holds. */
	memcpy(&eh, img, sizeof(eh));
	eh.e_phnum = 400;
	memcpy(img, &eh, sizeof(eh));
	cfg.kernel_len = len;
	assert_fails(x86_load_elf(&gm, &cfg, &out, &err), "program headers");

	/* e_phoff so large that e_phoff + size would wrap. */
	eh.e_phnum = 3;
	eh.e_phoff = UINT64_MAX - 8;
	memcpy(img, &eh, sizeof(eh));
	assert_fails(x86_load_elf(&gm, &cfg, &out, &err), "kernel image is truncated");
	free(img);
}

Test(elf, segment_data_cut_off)
{
	struct elf_spec s = elf_default();
	size_t len;
	uint8_t *img = make_elf(&s, &len);
	struct x86_boot out;
	struct x86_boot_config cfg = {.kernel = img, .kernel_len = len - 1};

	assert_fails(x86_load_elf(&gm, &cfg, &out, &err), "ELF segment 0");
	cr_assert_not_null(strstr(err.msg, "kernel image is truncated"), "%s", err.msg);
	free(img);
}

Test(elf, segment_outside_ram)
{
	struct elf_spec s = elf_default();
	struct x86_boot out;

	s.paddr = RAM_SIZE - MiB;
	s.memsz = 2 * MiB;
	assert_fails(load_elf(&s, NULL, NULL, 0, &out), "outside guest RAM");

	/* An address range that wraps past 2^64. */
	s.paddr = UINT64_MAX - 0xfff;
	s.memsz = 0x5000;
	assert_fails(load_elf(&s, NULL, NULL, 0, &out), "outside guest RAM");

	s.paddr = 0x8000;
	s.memsz = 0x5000;
	assert_fails(load_elf(&s, NULL, NULL, 0, &out), "below 1 MiB");
}

Test(elf, wrong_machine)
{
	struct elf_spec s = elf_default();
	struct x86_boot out;

	s.machine = EM_386;
	assert_fails(load_elf(&s, NULL, NULL, 0, &out), "not x86-64");
	s.machine = EM_AARCH64;
	assert_fails(load_elf(&s, NULL, NULL, 0, &out), "machine 183");
}

Test(elf, wrong_class)
{
	struct elf_spec s = elf_default();
	struct x86_boot out;

	s.class = ELFCLASS32;
	assert_fails(load_elf(&s, NULL, NULL, 0, &out), "not 64-bit");
}

Test(elf, offset_plus_filesz_overflows)
{
	struct elf_spec s = elf_default();
	struct x86_boot out;

	s.offset = UINT64_MAX - 0x10;
	s.filesz = 0x100;
	assert_fails(load_elf(&s, NULL, NULL, 0, &out), "kernel image is truncated");
}

Test(elf, filesz_larger_than_memsz)
{
	struct elf_spec s = elf_default();
	struct x86_boot out;

	s.memsz = 0x1000;
	assert_fails(load_elf(&s, NULL, NULL, 0, &out), "p_filesz");
}

Test(elf, malformed_pvh_note)
{
	struct elf_spec s = elf_default();
	struct x86_boot out;

	s.pvh_descsz = 2;
	assert_fails(load_elf(&s, NULL, NULL, 0, &out), "PVH entry note has a 2-byte value");
}

Test(elf, initrd_too_big)
{
	struct elf_spec s = elf_default();
	size_t initrd_len = 60 * MiB;
	uint8_t *initrd = calloc(1, initrd_len);
	struct x86_boot out;

	cr_assert_not_null(initrd);
	assert_fails(load_elf(&s, NULL, initrd, initrd_len, &out), "does not fit");
	free(initrd);
}
