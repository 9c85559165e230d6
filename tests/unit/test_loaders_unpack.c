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
#include "vmm/kernel_cache.h"

TestSuite(unpack, .init = map_ram, .fini = unmap_ram);

#define SEG0_PADDR (16 * MiB)
#define SEG1_PADDR (20 * MiB)
#define PVH_ENTRY (SEG0_PADDR + 0x123)
#define PAYLOAD_OFF 0x100 /* inside the protected-mode part, like a real bzImage's */

struct seg {
	uint64_t off, paddr, filesz, memsz;
};

/* Two segments like vmlinux's text and data+bss, a gap, a note inside the text, a tail. */
static const struct seg default_segs[2] = {
    {0x2000, SEG0_PADDR, 0x5000, 0x5000},
    {0x9000, SEG1_PADDR, 0x3000, 0x7000},
};
#define NOTE_OFF 0x4800 /* in segment 0, beyond the first 4 KiB */

static uint8_t seg_byte(int s, uint64_t i)
{
	return (uint8_t)(i * 7 + 3 + s * 101);
}

/* A vmlinux.bin-like ELF: PT_LOADs, a PT_NOTE (PVH entry if pvh), GNU_STACK, tail bytes. */
static uint8_t *make_vmlinux(const struct seg *segs, int n, bool pvh, size_t *len)
{
	size_t end = NOTE_OFF + 64, tail = 0x1800;
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uint8_t *img;
	int k = 0;

	for (int i = 0; i < n; i++)
		if (segs[i].off + segs[i].filesz > end)
			end = segs[i].off + segs[i].filesz;
	img = calloc(1, end + tail);
	cr_assert_not_null(img);
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = SEG0_PADDR;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (uint16_t)(n + 2);
	memcpy(img, &eh, sizeof(eh));

	for (int i = 0; i < n; i++) {
		ph = (Elf64_Phdr){.p_type = PT_LOAD,
				  .p_flags = PF_R | PF_W | PF_X,
				  .p_offset = segs[i].off,
				  .p_vaddr = 0xffffffff80000000ULL + segs[i].paddr,
				  .p_paddr = segs[i].paddr,
				  .p_filesz = segs[i].filesz,
				  .p_memsz = segs[i].memsz,
				  .p_align = 0x1000};
		memcpy(img + sizeof(eh) + k++ * sizeof(ph), &ph, sizeof(ph));
		for (uint64_t j = 0; j < segs[i].filesz; j++)
			img[segs[i].off + j] = seg_byte(i, j);
	}
	/* The note: Xen's PHYS32_ENTRY if pvh, else an unrelated Xen note. */
	Elf64_Nhdr nh = {
	    .n_namesz = 4, .n_descsz = 8, .n_type = pvh ? PVH_ELFNOTE_PHYS32_ENTRY : 1};
	uint64_t v = PVH_ENTRY;
	memcpy(img + NOTE_OFF, &nh, sizeof(nh));
	memcpy(img + NOTE_OFF + sizeof(nh), "Xen", 4);
	memcpy(img + NOTE_OFF + sizeof(nh) + 4, &v, 8);
	ph = (Elf64_Phdr){.p_type = PT_NOTE,
			  .p_offset = NOTE_OFF,
			  .p_filesz = sizeof(nh) + 4 + 8,
			  .p_memsz = sizeof(nh) + 4 + 8,
			  .p_align = 4};
	memcpy(img + sizeof(eh) + k++ * sizeof(ph), &ph, sizeof(ph));
	ph = (Elf64_Phdr){.p_type = PT_GNU_STACK, .p_flags = PF_R | PF_W, .p_align = 16};
	memcpy(img + sizeof(eh) + k * sizeof(ph), &ph, sizeof(ph));
	for (size_t j = 0; j < tail; j++) /* like vmlinux.relocs: not loaded */
		img[end + j] = 0xee;
	*len = end + tail;
	return img;
}

/* xz as the kernel's build makes it: x86 BCJ + LZMA2, CRC32. */
static uint8_t *xz(const uint8_t *in, size_t len, size_t *out_len)
{
	lzma_options_lzma opt;
	lzma_filter f[3] = {
	    {LZMA_FILTER_X86, NULL}, {LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, NULL}};
	size_t cap = lzma_stream_buffer_bound(len), pos = 0;
	uint8_t *out = malloc(cap);

	cr_assert_not_null(out);
	cr_assert_eq(lzma_lzma_preset(&opt, 0), 0);
	cr_assert_eq(lzma_stream_buffer_encode(f, LZMA_CHECK_CRC32, NULL, in, len, out, &pos, cap),
		     LZMA_OK);
	*out_len = pos;
	return out;
}

/*
 * A bzImage whose protected-mode part holds payload (plus the 4-byte output size the kernel's
 * build appends) at PAYLOAD_OFF; payload_length claims claim bytes (0: the real length).
 */
static uint8_t *wrap(const uint8_t *payload, size_t len, uint32_t out_size, size_t claim,
		     size_t *img_len)
{
	struct bz_spec s = bz_default();
	struct setup_header h;
	uint8_t *img;
	size_t setup = bz_setup_len(&s);

	s.pm_size = (uint32_t)((PAYLOAD_OFF + len + 4 + 0x200 + 15) & ~15UL);
	img = make_bzimage(&s, img_len);
	memcpy(img + setup + PAYLOAD_OFF, payload, len);
	memcpy(img + setup + PAYLOAD_OFF + len, &out_size, 4);
	memcpy(&h, img + 0x1f1, sizeof(h));
	h.payload_offset = PAYLOAD_OFF;
	h.payload_length = (uint32_t)(claim ? claim : len + 4);
	memcpy(img + 0x1f1, &h, sizeof(h));
	return img;
}

struct kernel {
	uint8_t *elf, *xz, *img;
	size_t elf_len, xz_len, img_len;
};

static void make_kernel(struct kernel *k, const struct seg *segs, int n, bool pvh)
{
	k->elf = make_vmlinux(segs, n, pvh, &k->elf_len);
	k->xz = xz(k->elf, k->elf_len, &k->xz_len);
	k->img = wrap(k->xz, k->xz_len, (uint32_t)k->elf_len, 0, &k->img_len);
}

static void free_kernel(struct kernel *k)
{
	free(k->elf);
	free(k->xz);
	free(k->img);
}

static int load_cached(const struct kernel *k, const char *cmdline, bool in_guest,
		       struct kernel_cache *kc, struct x86_boot *out)
{
	struct x86_boot_config cfg = {.kernel = k->img,
				      .kernel_len = k->img_len,
				      .cmdline = cmdline,
				      .unpack_in_guest = in_guest,
				      .cache = kc ? &kc->ops : NULL};

	memset(out, 0, sizeof(*out));
	return x86_load_kernel(&gm, &cfg, out, &err);
}

static int load(const struct kernel *k, const char *cmdline, bool in_guest, struct x86_boot *out)
{
	return load_cached(k, cmdline, in_guest, NULL, out);
}

static void check_segments(const struct kernel *k, const struct seg *segs, int n)
{
	for (int i = 0; i < n; i++) {
		const uint8_t *p = gp(segs[i].paddr, segs[i].memsz);

		cr_assert_eq(memcmp(p, k->elf + segs[i].off, segs[i].filesz), 0,
			     "segment %d differs", i);
		cr_assert(all_zero(p + segs[i].filesz, segs[i].memsz - segs[i].filesz),
			  "segment %d's bss is not zero", i);
	}
}

/* Booted the old way: the protected-mode part at 1 MiB, entered at startup_64. */
static void check_old_path(const struct kernel *k, const struct x86_boot *out)
{
	size_t setup = bz_setup_len(&(struct bz_spec){.setup_sects = 7});

	cr_assert_eq(out->mode, X86_ENTRY_LINUX64);
	cr_assert_eq(out->entry, X86_HIMEM_START + 0x200);
	cr_assert_eq(
	    memcmp(gp(X86_HIMEM_START, k->img_len - setup), k->img + setup, k->img_len - setup), 0);
	/* Nothing the host unpack may have begun is left behind. */
	cr_assert(all_zero(gp(SEG0_PADDR, 8 * MiB), 8 * MiB), "ELF segments left in RAM");
}

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
static char cache_dir[64];

static void fresh_cache(struct kernel_cache *kc)
{
	strcpy(cache_dir, "/tmp/kestrel-kcache-XXXXXX");
	cr_assert_not_null(mkdtemp(cache_dir));
	cr_assert_eq(setenv("KESTREL_CACHE_DIR", cache_dir, 1), 0);
	kernel_cache_init(kc);
}

static void remove_cache(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cache_dir);
	cr_assert_eq(system(cmd), 0);
}

/* The single entry's path (asserting there is exactly one), and the count. */
static int entries(char *path, size_t cap)
{
	DIR *d = opendir(cache_dir);
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".kernel")) {
			n++;
			if (path)
				snprintf(path, cap, "%s/%s", cache_dir, de->d_name);
		}
	closedir(d);
	return n;
}

static void clear_ram(void)
{
	memset(gp(0, RAM_SIZE), 0, RAM_SIZE);
}

Test(unpack, cache_miss_then_hit_loads_identical_memory)
{
	struct kernel_cache kc;
	struct kernel k;
	struct x86_boot out, out2;
	uint8_t *snap = malloc(RAM_SIZE);

	cr_assert_not_null(snap);
	fresh_cache(&kc);
	make_kernel(&k, default_segs, 2, true);
	cr_assert_eq(load_cached(&k, "console=ttyS0", false, &kc, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "unpacked on the host ("), "note: %s", out.note);
	cr_assert_not_null(strstr(out.note, "; cache miss)"), "note: %s", out.note);
	cr_assert_not_null(strstr(kc.note, "kernel cache: stored"), "cache: %s", kc.note);
	cr_assert_eq(entries(NULL, 0), 1);
	memcpy(snap, gp(0, RAM_SIZE), RAM_SIZE);
	clear_ram();
	kernel_cache_init(&kc);
	cr_assert_eq(load_cached(&k, "console=ttyS0", false, &kc, &out2), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out2.note, "xz payload from the cache ("), "note: %s", out2.note);
	cr_assert_eq(out2.mode, out.mode);
	cr_assert_eq(out2.entry, out.entry);
	cr_assert_eq(out2.info_gpa, out.info_gpa);
	cr_assert_eq(memcmp(snap, gp(0, RAM_SIZE), RAM_SIZE), 0, "guest RAM differs on a hit");
	free(snap);
	free_kernel(&k);
	remove_cache();
}

enum damage { FLIP_PAYLOAD, TRUNCATE, BAD_MAGIC, FLIP_CRC };

/* A damaged entry is a miss: the decoder runs, the right bytes boot, the entry is replaced. */
static void damaged_entry_is_a_miss(enum damage how)
{
	struct kernel_cache kc;
	struct kernel k;
	struct x86_boot out;
	char path[512];
	struct stat st;
	int fd;

	fresh_cache(&kc);
	make_kernel(&k, default_segs, 2, true);
	cr_assert_eq(load_cached(&k, NULL, false, &kc, &out), 0, "%s", err.msg);
	cr_assert_eq(entries(path, sizeof(path)), 1);
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	if (how == TRUNCATE) {
		cr_assert_eq(ftruncate(fd, st.st_size - 1), 0);
	} else {
		/* The header is 40 bytes: the payload copy starts there; its CRC is at 32. */
		off_t at = how == FLIP_PAYLOAD ? 40 + (off_t)k.xz_len / 2
			   : how == FLIP_CRC   ? 32
					       : 0;
		uint8_t b;

		cr_assert_eq(pread(fd, &b, 1, at), 1);
		b ^= 0x40;
		cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	}
	close(fd);
	clear_ram();
	kernel_cache_init(&kc);
	cr_assert_eq(load_cached(&k, NULL, false, &kc, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "; cache miss)"), "note: %s", out.note);
	check_segments(&k, default_segs, 2);
	cr_assert_eq(out.entry, PVH_ENTRY);
	/* Replaced by a sound one: the next boot is a hit. */
	cr_assert_eq(entries(NULL, 0), 1);
	clear_ram();
	kernel_cache_init(&kc);
	cr_assert_eq(load_cached(&k, NULL, false, &kc, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "from the cache"), "note: %s", out.note);
	check_segments(&k, default_segs, 2);
	free_kernel(&k);
	remove_cache();
}

Test(unpack, cache_entry_with_a_flipped_payload_byte_is_a_miss)
{
	damaged_entry_is_a_miss(FLIP_PAYLOAD);
}

Test(unpack, cache_entry_truncated_is_a_miss)
{
	damaged_entry_is_a_miss(TRUNCATE);
}

Test(unpack, cache_entry_with_a_bad_header_is_a_miss)
{
	damaged_entry_is_a_miss(BAD_MAGIC);
	damaged_entry_is_a_miss(FLIP_CRC);
}

Test(unpack, unusable_cache_dir_still_boots)
{
	struct kernel_cache kc;
	struct kernel k;
	struct x86_boot out;

	cr_assert_eq(setenv("KESTREL_CACHE_DIR", "/dev/null/kestrel", 1), 0);
	kernel_cache_init(&kc);
	make_kernel(&k, default_segs, 2, true);
	cr_assert_eq(load_cached(&k, NULL, false, &kc, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "unpacked on the host"), "note: %s", out.note);
	cr_assert_not_null(strstr(kc.note, "kernel cache: not used"), "cache: %s", kc.note);
	check_segments(&k, default_segs, 2);
	/* A directory others can write is not used: its entries would be booted. */
	fresh_cache(&kc);
	cr_assert_eq(chmod(cache_dir, 0777), 0);
	clear_ram();
	cr_assert_eq(load_cached(&k, NULL, false, &kc, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(kc.note, "only it can write"), "cache: %s", kc.note);
	check_segments(&k, default_segs, 2);
	cr_assert_eq(entries(NULL, 0), 0);
	free_kernel(&k);
	remove_cache();
}

Test(unpack, cache_keeps_at_most_its_bound)
{
	struct kernel_cache kc;
	struct kernel k[KERNEL_CACHE_MAX_ENTRIES + 2];
	struct x86_boot out;

	fresh_cache(&kc);
	for (int i = 0; i < KERNEL_CACHE_MAX_ENTRIES + 2; i++) {
		struct seg segs[2] = {default_segs[0], default_segs[1]};

		segs[1].filesz -= 0x100 * (uint64_t)i; /* a different kernel each time */
		make_kernel(&k[i], segs, 2, true);
		kernel_cache_init(&kc);
		cr_assert_eq(load_cached(&k[i], NULL, false, &kc, &out), 0, "%s", err.msg);
		cr_assert_not_null(strstr(out.note, "cache miss"), "note: %s", out.note);
		cr_assert_leq(entries(NULL, 0), KERNEL_CACHE_MAX_ENTRIES);
		usleep(20000); /* distinct mtimes */
	}
	/* The newest are kept, the oldest went. */
	kernel_cache_init(&kc);
	cr_assert_eq(load_cached(&k[KERNEL_CACHE_MAX_ENTRIES + 1], NULL, false, &kc, &out), 0);
	cr_assert_not_null(strstr(out.note, "from the cache"), "note: %s", out.note);
	kernel_cache_init(&kc);
	cr_assert_eq(load_cached(&k[0], NULL, false, &kc, &out), 0);
	cr_assert_not_null(strstr(out.note, "cache miss"), "note: %s", out.note);
	for (int i = 0; i < KERNEL_CACHE_MAX_ENTRIES + 2; i++)
		free_kernel(&k[i]);
	remove_cache();
}

/* --kernel-cache off (no cache given) and --kernel-unpack guest never touch the directory. */
Test(unpack, cache_off_never_touches_the_dir)
{
	struct kernel_cache kc;
	struct kernel k;
	struct x86_boot out;
	struct stat st;

	cr_assert_eq(setenv("KESTREL_CACHE_DIR", "/tmp/kestrel-kcache-never/sub", 1), 0);
	kernel_cache_init(&kc);
	make_kernel(&k, default_segs, 2, true);
	cr_assert_eq(load_cached(&k, NULL, false, NULL, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "unpacked on the host"), "note: %s", out.note);
	cr_assert_null(strstr(out.note, "cache"), "note: %s", out.note);
	clear_ram();
	cr_assert_eq(load_cached(&k, NULL, true, &kc, &out), 0, "%s", err.msg);
	cr_assert_lt(stat("/tmp/kestrel-kcache-never", &st), 0, "the cache dir was made");
	free_kernel(&k);
}
