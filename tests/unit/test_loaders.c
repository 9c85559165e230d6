/*
 * The x86 kernel loaders against crafted in-memory images and a 64 MiB fake guest. Every
 * rejected image must leave guest memory untouched.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "vmm/guest_mem.h"

#define MiB (1ULL << 20)
#define RAM_SIZE (64 * MiB)
#define PAGE 4096ULL

static struct guest_mem gm;
static struct kerr err;

static void map_ram(void)
{
	struct guest_mem_region r[2];
	int n = x86_ram_layout(RAM_SIZE, r);

	cr_assert_eq(n, 1);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(guest_mem_map(&gm, r, n, &err), 0, "%s", err.msg);
}

static void unmap_ram(void)
{
	guest_mem_unmap(&gm);
}

TestSuite(bzimage, .init = map_ram, .fini = unmap_ram);
TestSuite(elf, .init = map_ram, .fini = unmap_ram);
TestSuite(detect, .init = map_ram, .fini = unmap_ram);

static uint8_t *gp(uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem_ptr(&gm, gpa, len);

	cr_assert_not_null(p, "[0x%llx, +0x%llx) not in RAM", (unsigned long long)gpa,
			   (unsigned long long)len);
	return p;
}

static bool all_zero(const uint8_t *p, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Failed loads must not have written a byte: all of guest RAM is still zero. */
static void assert_guest_untouched(void)
{
	cr_assert(all_zero(gp(0, RAM_SIZE), RAM_SIZE), "guest memory was written");
}

static void assert_fails(int ret, const char *needle)
{
	cr_assert_eq(ret, -1);
	cr_log_info("error: %s", err.msg);
	cr_assert_not_null(strstr(err.msg, needle), "error \"%s\" lacks \"%s\"", err.msg, needle);
	cr_assert_null(strchr(err.msg, '\n'), "error is not one line: \"%s\"", err.msg);
	assert_guest_untouched();
}

static uint8_t *pattern(size_t len, uint8_t seed)
{
	uint8_t *p = malloc(len);

	cr_assert_not_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed);
	return p;
}

static void check_e820(const struct boot_e820_entry *got, int n)
{
	struct boot_e820_entry want[8];
	int nw = x86_build_e820(RAM_SIZE, want, 8);

	cr_assert_eq(n, nw);
	cr_assert_eq(memcmp(got, want, sizeof(want[0]) * nw), 0, "e820 differs");
}

/* ---- bzImage ---- */

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

static struct bz_spec bz_default(void)
{
	return (struct bz_spec){
	    .version = 0x020f,
	    .xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G,
	    .loadflags = LOADED_HIGH,
	    .setup_sects = 7,
	    .relocatable = 1,
	    .pm_size = 64 * 1024,
	    .init_size = 8 * MiB,
	    .kernel_alignment = 2 * MiB,
	    .initrd_addr_max = 0x7fffffff,
	    .cmdline_size = 2047,
	    .magic = {'H', 'd', 'r', 'S'},
	};
}

static size_t bz_setup_len(const struct bz_spec *s)
{
	return ((size_t)(s->setup_sects ? s->setup_sects : 4) + 1) * 512;
}

/* A bzImage with a full setup header and a patterned protected-mode part. */
static uint8_t *make_bzimage(const struct bz_spec *s, size_t *len)
{
	size_t setup = bz_setup_len(s);
	uint8_t *img = calloc(1, setup + s->pm_size);
	struct setup_header h;

	cr_assert_not_null(img);
	memset(&h, 0, sizeof(h));
	h.setup_sects = s->setup_sects;
	h.syssize = s->pm_size / 16;
	h.vid_mode = 0xffff;
	h.boot_flag = 0xaa55;
	/* "jmp short" whose offset makes the header end right after our struct. */
	h.jump = (uint16_t)(0xeb | (0x1f1 + sizeof(h) - 0x202) << 8);
	memcpy(&h.header, s->magic, 4);
	h.version = s->version;
	h.loadflags = s->loadflags;
	h.code32_start = 0x100000;
	h.initrd_addr_max = s->initrd_addr_max;
	h.kernel_alignment = s->kernel_alignment;
	h.relocatable_kernel = s->relocatable;
	h.min_alignment = 21;
	h.xloadflags = s->xloadflags;
	h.cmdline_size = s->cmdline_size;
	h.pref_address = 0x1000000;
	h.init_size = s->init_size;
	memcpy(img + 0x1f1, &h, sizeof(h));
	for (size_t i = 0; i < s->pm_size; i++)
		img[setup + i] = (uint8_t)(i * 13 + 5);
	*len = setup + s->pm_size;
	return img;
}

static int load_bz(const struct bz_spec *s, const char *cmdline, const uint8_t *initrd,
		   size_t initrd_len, struct x86_boot *out)
{
	size_t len;
	uint8_t *img = make_bzimage(s, &len);
	struct x86_boot_config cfg = {
	    .kernel = img,
	    .kernel_len = len,
	    .initrd = initrd,
	    .initrd_len = initrd_len,
	    .cmdline = cmdline,
	};
	int ret = x86_load_bzimage(&gm, &cfg, out, &err);

	free(img);
	return ret;
}

Test(bzimage, valid_image_is_loaded)
{
	struct bz_spec s = bz_default();
	const char *cmdline = "console=ttyS0 root=/dev/vda rw";
	size_t initrd_len = MiB + 123;
	uint8_t *initrd = pattern(initrd_len, 3);
	size_t len;
	uint8_t *img = make_bzimage(&s, &len);
	struct x86_boot_config cfg = {img, len, initrd, initrd_len, cmdline, 0};
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

/* ---- ELF vmlinux ---- */

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

static struct elf_spec elf_default(void)
{
	return (struct elf_spec){
	    .machine = EM_X86_64,
	    .class = ELFCLASS64,
	    .pvh = true,
	    .pvh_descsz = 8,
	    .paddr = ELF_PADDR,
	    .filesz = 0x3000,
	    .memsz = 0x5000, /* two pages of bss */
	    .offset = ELF_DATA_OFF,
	};
}

static size_t put_note(uint8_t *p, const char *name, uint32_t type, uint64_t val, uint32_t descsz)
{
	Elf64_Nhdr nh = {
	    .n_namesz = (uint32_t)strlen(name) + 1, .n_descsz = descsz, .n_type = type};
	size_t off = sizeof(nh);

	memcpy(p, &nh, sizeof(nh));
	memcpy(p + off, name, nh.n_namesz);
	off += (nh.n_namesz + 3) & ~3U;
	memcpy(p + off, &val, descsz);
	off += (descsz + 3) & ~3U;
	return off;
}

/* A vmlinux-like ELF: PT_LOAD, PT_NOTE (build-id, a decoy Xen note, maybe PVH), GNU_STACK. */
static uint8_t *make_elf(const struct elf_spec *s, size_t *len)
{
	size_t data_len = s->offset == ELF_DATA_OFF ? s->filesz : 0;
	uint8_t *img = calloc(1, ELF_DATA_OFF + data_len);
	Elf64_Ehdr eh;
	Elf64_Phdr ph[3];
	size_t notes = 0;

	cr_assert_not_null(img);
	notes +=
	    put_note(img + ELF_NOTES_OFF + notes, "GNU", NT_GNU_BUILD_ID, 0x1122334455667788, 8);
	/* Xen's virtual entry note: same name, other type; must be ignored. */
	notes += put_note(img + ELF_NOTES_OFF + notes, "Xen", 1, 0xffffffff81000000, 8);
	if (s->pvh)
		notes += put_note(img + ELF_NOTES_OFF + notes, "Xen", PVH_ELFNOTE_PHYS32_ENTRY,
				  ELF_PVH_ENTRY, s->pvh_descsz);

	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = s->class;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = s->machine;
	eh.e_version = EV_CURRENT;
	eh.e_entry = ELF_PADDR;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 3;

	memset(ph, 0, sizeof(ph));
	ph[0] = (Elf64_Phdr){.p_type = PT_LOAD,
			     .p_flags = PF_R | PF_X,
			     .p_offset = s->offset,
			     .p_vaddr = 0xffffffff81000000,
			     .p_paddr = s->paddr,
			     .p_filesz = s->filesz,
			     .p_memsz = s->memsz,
			     .p_align = 0x200000};
	ph[1] = (Elf64_Phdr){.p_type = PT_NOTE,
			     .p_offset = ELF_NOTES_OFF,
			     .p_filesz = notes,
			     .p_memsz = notes,
			     .p_align = 4};
	ph[2] = (Elf64_Phdr){.p_type = PT_GNU_STACK, .p_flags = PF_R | PF_W, .p_align = 16};
	memcpy(img, &eh, sizeof(eh));
	memcpy(img + sizeof(eh), ph, sizeof(ph));
	for (size_t i = 0; i < data_len; i++)
		img[ELF_DATA_OFF + i] = (uint8_t)(i * 11 + 1);
	*len = ELF_DATA_OFF + data_len;
	return img;
}

static int load_elf(const struct elf_spec *s, const char *cmdline, const uint8_t *initrd,
		    size_t initrd_len, struct x86_boot *out)
{
	size_t len;
	uint8_t *img = make_elf(s, &len);
	struct x86_boot_config cfg = {img, len, initrd, initrd_len, cmdline, 0};
	int ret = x86_load_elf(&gm, &cfg, out, &err);

	free(img);
	return ret;
}

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
	struct x86_boot_config cfg = {img, len, initrd, initrd_len, cmdline, 0};
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
	struct x86_boot_config cfg = {img, len, initrd, initrd_len, cmdline, 0};
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

/* ---- format detection ---- */

Test(detect, dispatches_bzimage)
{
	struct bz_spec s = bz_default();
	size_t len;
	uint8_t *img = make_bzimage(&s, &len);
	struct x86_boot_config cfg = {.kernel = img, .kernel_len = len};
	struct x86_boot out;

	cr_assert_eq(x86_load_kernel(&gm, &cfg, &out, &err), 0, "%s", err.msg);
	cr_assert_eq(out.mode, X86_ENTRY_LINUX64);
	cr_assert_eq(out.entry, X86_HIMEM_START + 0x200);
	free(img);
}

Test(detect, dispatches_elf)
{
	struct elf_spec s = elf_default();
	size_t len;
	uint8_t *img = make_elf(&s, &len);
	struct x86_boot_config cfg = {.kernel = img, .kernel_len = len};
	struct x86_boot out;

	cr_assert_eq(x86_load_kernel(&gm, &cfg, &out, &err), 0, "%s", err.msg);
	cr_assert_eq(out.mode, X86_ENTRY_PVH);
	free(img);
}

Test(detect, rejects_other_files)
{
	static const char text[] = "#!/bin/sh\necho this is not a kernel\n";
	uint8_t *junk = calloc(1, 8192);
	struct x86_boot out;
	struct x86_boot_config cfg = {.kernel = junk, .kernel_len = 8192};

	cr_assert_not_null(junk);
	memcpy(junk, text, sizeof(text));
	assert_fails(x86_load_kernel(&gm, &cfg, &out, &err),
		     "not a Linux kernel image (neither a bzImage nor an ELF vmlinux)");

	cfg.kernel_len = sizeof(text);
	assert_fails(x86_load_kernel(&gm, &cfg, &out, &err), "kernel image is truncated");
	cfg.kernel_len = 0;
	assert_fails(x86_load_kernel(&gm, &cfg, &out, &err), "kernel image is truncated");
	cfg.kernel = NULL;
	assert_fails(x86_load_kernel(&gm, &cfg, &out, &err), "kernel image is truncated");
	free(junk);
}
