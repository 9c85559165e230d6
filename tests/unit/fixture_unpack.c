#include "fixture_unpack.h"

#include <criterion/criterion.h>
#include <elf.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "fixture_kernel_images.h"
#include "fixture_loaders.h"
const struct seg default_segs[2] = {
    {0x2000, SEG0_PADDR, 0x5000, 0x5000},
    {0x9000, SEG1_PADDR, 0x3000, 0x7000},
};

uint8_t seg_byte(int s, uint64_t i)
{
	return (uint8_t)(i * 7 + 3 + s * 101);
}

uint8_t *make_vmlinux(const struct seg *segs, int n, bool pvh, size_t *len)
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

uint8_t *xz(const uint8_t *in, size_t len, size_t *out_len)
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

uint8_t *wrap(const uint8_t *payload, size_t len, uint32_t out_size, size_t claim, size_t *img_len)
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

void make_kernel(struct kernel *k, const struct seg *segs, int n, bool pvh)
{
	k->elf = make_vmlinux(segs, n, pvh, &k->elf_len);
	k->xz = xz(k->elf, k->elf_len, &k->xz_len);
	k->img = wrap(k->xz, k->xz_len, (uint32_t)k->elf_len, 0, &k->img_len);
}

void free_kernel(struct kernel *k)
{
	free(k->elf);
	free(k->xz);
	free(k->img);
}

int load_cached(const struct kernel *k, const char *cmdline, bool in_guest, struct kernel_cache *kc,
		struct x86_boot *out)
{
	struct x86_boot_config cfg = {.kernel = k->img,
				      .kernel_len = k->img_len,
				      .cmdline = cmdline,
				      .unpack_in_guest = in_guest,
				      .cache = kc ? &kc->ops : NULL};

	memset(out, 0, sizeof(*out));
	return x86_load_kernel(&gm, &cfg, out, &err);
}

int load(const struct kernel *k, const char *cmdline, bool in_guest, struct x86_boot *out)
{
	return load_cached(k, cmdline, in_guest, NULL, out);
}

void check_segments(const struct kernel *k, const struct seg *segs, int n)
{
	for (int i = 0; i < n; i++) {
		const uint8_t *p = gp(segs[i].paddr, segs[i].memsz);

		cr_assert_eq(memcmp(p, k->elf + segs[i].off, segs[i].filesz), 0,
			     "segment %d differs", i);
		cr_assert(all_zero(p + segs[i].filesz, segs[i].memsz - segs[i].filesz),
			  "segment %d's bss is not zero", i);
	}
}

void check_old_path(const struct kernel *k, const struct x86_boot *out)
{
	size_t setup = bz_setup_len(&(struct bz_spec){.setup_sects = 7});

	cr_assert_eq(out->mode, X86_ENTRY_LINUX64);
	cr_assert_eq(out->entry, X86_HIMEM_START + 0x200);
	cr_assert_eq(
	    memcmp(gp(X86_HIMEM_START, k->img_len - setup), k->img + setup, k->img_len - setup), 0);
	/* Nothing the host unpack may have begun is left behind. */
	cr_assert(all_zero(gp(SEG0_PADDR, 8 * MiB), 8 * MiB), "ELF segments left in RAM");
}
