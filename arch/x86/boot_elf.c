/*
 * The ELF vmlinux loader. PT_LOAD segments go to their physical addresses. A kernel with a
 * Xen PHYS32_ENTRY note is started the PVH way (32-bit, paging off, EBX = hvm_start_info);
 * any other is entered at e_entry in long mode with a zero page, like a bzImage.
 */
#include <elf.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/boot_priv.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"

/* x86-64 Linux can use an initrd anywhere below 2 GiB (its own initrd_addr_max). */
#define ELF_INITRD_ADDR_MAX 0x7fffffffU
#define ELF_KERNEL_ALIGNMENT 0x1000000U /* 16 MiB: what x86-64 kernels are linked for */
#define BZ_MAGIC 0x53726448U		/* "HdrS" read as a little-endian u32 */
#define BZ_BOOT_FLAG 0xaa55
#define BZ_VERSION_2_12 0x020c

_Static_assert(sizeof(struct x86_pvh_page) <= X86_PAGE_SIZE, "PVH data must fit one page");
_Static_assert(X86_PVH_INFO_ADDR + X86_PAGE_SIZE <= X86_BOOT_PARAMS_ADDR,
	       "PVH page overlaps the zero page");

void x86_elf_read_phdr(const struct x86_elf *e, int i, Elf64_Phdr *ph)
{
	/* Checked against len by x86_elf_check_ehdr; the file may be unaligned. */
	memcpy(ph, e->img + e->eh.e_phoff + (uint64_t)i * sizeof(*ph), sizeof(*ph));
}

int x86_elf_check_ehdr(struct x86_elf *e, struct kerr *err)
{
	const Elf64_Ehdr *eh = &e->eh;
	uint64_t ph_bytes;

	if (e->len < sizeof(*eh))
		return kerr_set(err,
				"kernel image is truncated: the ELF header needs %zu bytes but the "
				"file has %zu bytes",
				sizeof(*eh), e->len);
	memcpy(&e->eh, e->img, sizeof(*eh));
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return kerr_set(err, "not an ELF file: missing \\x7fELF magic");
	if (eh->e_ident[EI_CLASS] != ELFCLASS64)
		return kerr_set(err,
				"ELF kernel is not 64-bit (EI_CLASS %u): kestrel needs an "
				"x86-64 vmlinux",
				eh->e_ident[EI_CLASS]);
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return kerr_set(err, "ELF kernel is not little-endian (EI_DATA %u)",
				eh->e_ident[EI_DATA]);
	if (eh->e_ident[EI_VERSION] != EV_CURRENT || eh->e_version != EV_CURRENT)
		return kerr_set(err, "ELF kernel has unknown ELF version %u", eh->e_version);
	if (eh->e_machine != EM_X86_64)
		return kerr_set(err, "ELF kernel is for machine %u, not x86-64 (%u)", eh->e_machine,
				EM_X86_64);
	if (eh->e_type != ET_EXEC)
		return kerr_set(err,
				"ELF kernel is not an executable (e_type %u, expected ET_EXEC)",
				eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return kerr_set(err, "ELF kernel has program header size %u (expected %zu)",
				eh->e_phentsize, sizeof(Elf64_Phdr));
	if (eh->e_phnum == 0 || eh->e_phnum == PN_XNUM)
		return kerr_set(err, "ELF kernel has %s program headers",
				eh->e_phnum ? "too many" : "no");

	ph_bytes = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
	if (eh->e_phoff > e->len || ph_bytes > e->len - eh->e_phoff)
		return kerr_set(
		    err,
		    "kernel image is truncated: %u program headers at offset 0x%llx do not "
		    "fit in the file's %zu bytes",
		    eh->e_phnum, (unsigned long long)eh->e_phoff, e->len);
	return 0;
}

int x86_elf_find_pvh_note(struct x86_elf *e, int idx, const uint8_t *notes, uint64_t size,
			  struct kerr *err)
{
	Elf64_Phdr ph;
	uint64_t off = 0, align;

	x86_elf_read_phdr(e, idx, &ph);
	align = ph.p_align == 8 ? 8 : 4;

	while (size - off >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		uint64_t desc_off, next;

		memcpy(&nh, notes + off, sizeof(nh));
		/* 32-bit sizes in 64-bit arithmetic: these sums cannot wrap. */
		desc_off = (off + sizeof(nh) + nh.n_namesz + align - 1) & ~(align - 1);
		if (desc_off > size || nh.n_descsz > size - desc_off)
			return kerr_set(
			    err, "ELF note segment %d is malformed: a note runs past its end", idx);
		next = (desc_off + nh.n_descsz + align - 1) & ~(align - 1);

		if (!e->pvh && nh.n_type == PVH_ELFNOTE_PHYS32_ENTRY &&
		    nh.n_namesz == sizeof(PVH_ELFNOTE_NAME) &&
		    memcmp(notes + off + sizeof(nh), PVH_ELFNOTE_NAME, sizeof(PVH_ELFNOTE_NAME)) ==
			0) {
			const uint8_t *d = notes + desc_off;
			uint64_t v = 0;

			/* Linux emits it as a pointer-sized value; the entry itself is 32-bit. */
			if (nh.n_descsz != 4 && nh.n_descsz != 8)
				return kerr_set(
				    err, "PVH entry note has a %u-byte value (expected 4 or 8)",
				    nh.n_descsz);
			for (uint32_t i = 0; i < nh.n_descsz; i++)
				v |= (uint64_t)d[i] << (8 * i);
			if (v > UINT32_MAX)
				return kerr_set(err,
						"PVH entry point 0x%llx is not a 32-bit address",
						(unsigned long long)v);
			e->pvh = true;
			e->pvh_entry = v;
		}
		if (next >= size)
			break;
		off = next;
	}
	return 0;
}

int x86_elf_check_phdrs(const struct guest_mem *gm, struct x86_elf *e, struct kerr *err)
{
	int nr_load = 0;

	for (int i = 0; i < e->eh.e_phnum; i++) {
		Elf64_Phdr ph;

		x86_elf_read_phdr(e, i, &ph);
		if (ph.p_offset > e->file_len || ph.p_filesz > e->file_len - ph.p_offset)
			return kerr_set(
			    err,
			    "kernel image is truncated: ELF segment %d (0x%llx bytes at offset "
			    "0x%llx) does not fit in the file's %llu bytes",
			    i, (unsigned long long)ph.p_filesz, (unsigned long long)ph.p_offset,
			    (unsigned long long)e->file_len);
		/* A streamed ELF's notes arrive later: the caller reads them then. */
		if (ph.p_type == PT_NOTE && ph.p_offset + ph.p_filesz <= e->len &&
		    x86_elf_find_pvh_note(e, i, e->img + ph.p_offset, ph.p_filesz, err) < 0)
			return -1;
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;

		if (ph.p_filesz > ph.p_memsz)
			return kerr_set(err, "ELF segment %d has p_filesz 0x%llx > p_memsz 0x%llx",
					i, (unsigned long long)ph.p_filesz,
					(unsigned long long)ph.p_memsz);
		/* Below 1 MiB are the page tables, zero page and command line. */
		if (ph.p_paddr < X86_HIMEM_START)
			return kerr_set(
			    err,
			    "ELF segment %d at 0x%llx would overwrite kestrel's boot data "
			    "below 1 MiB",
			    i, (unsigned long long)ph.p_paddr);
		if (!guest_mem_ptr(gm, ph.p_paddr, ph.p_memsz))
			return kerr_set(
			    err, "ELF segment %d [0x%llx, +0x%llx) is outside guest RAM (%llu MiB)",
			    i, (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz,
			    (unsigned long long)(gm->ram_size >> 20));
		if (ph.p_paddr + ph.p_memsz > e->kernel_end)
			e->kernel_end = ph.p_paddr + ph.p_memsz;
		nr_load++;
	}
	if (nr_load == 0)
		return kerr_set(err, "ELF kernel has no loadable segments");
	return 0;
}

static int write_segments(const struct guest_mem *gm, const struct x86_elf *e, struct kerr *err)
{
	for (int i = 0; i < e->eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint8_t *dst;

		x86_elf_read_phdr(e, i, &ph);
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		dst = guest_mem_ptr(gm, ph.p_paddr, ph.p_memsz); /* checked by check_phdrs */
		if (guest_mem_place(gm, ph.p_paddr, e->img + ph.p_offset, ph.p_filesz, e->fd,
				    e->fd_off + ph.p_offset, err) < 0)
			return -1;
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
	}
	return 0;
}

static int build_pvh(const struct guest_mem *gm, const struct x86_boot_extras *ex,
		     struct x86_pvh_page *pg, struct kerr *err)
{
	struct boot_e820_entry e820[X86_E820_MAX];
	int n;

	if (!guest_mem_ptr(gm, X86_PVH_INFO_ADDR, sizeof(*pg)))
		return kerr_set(err, "guest RAM is too small for the PVH start info");
	n = x86_build_e820(gm->ram_size, e820, X86_E820_MAX);
	if (n < 0)
		return kerr_set(err, "cannot build a memory map for %llu MiB of guest RAM",
				(unsigned long long)(gm->ram_size >> 20));

	memset(pg, 0, sizeof(*pg));
	/* e820 and PVH memory map types share their numbering. */
	for (int i = 0; i < n; i++)
		pg->memmap[i] = (struct hvm_memmap_table_entry){
		    .addr = e820[i].addr, .size = e820[i].size, .type = e820[i].type};
	pg->info.magic = PVH_START_MAGIC;
	pg->info.version = PVH_START_VERSION;
	pg->info.cmdline_paddr = X86_CMDLINE_ADDR;
	pg->info.memmap_paddr = X86_PVH_INFO_ADDR + offsetof(struct x86_pvh_page, memmap);
	pg->info.memmap_entries = (uint32_t)n;
	pg->info.rsdp_paddr = ex->acpi_rsdp;
	if (ex->initrd_len) {
		pg->mod.paddr = ex->initrd_gpa;
		pg->mod.size = ex->initrd_len;
		pg->info.nr_modules = 1;
		pg->info.modlist_paddr = X86_PVH_INFO_ADDR + offsetof(struct x86_pvh_page, mod);
	}
	return 0;
}

/*
 * A zero page for a vmlinux: with the setup header of the bzImage it came from, or, for one
 * that carries none, a made-up header with the vmlinux limits.
 */
static int build_boot_params(const struct guest_mem *gm, const struct x86_boot_extras *ex,
			     const struct setup_header *hdr, struct boot_params *bp,
			     struct kerr *err)
{
	memset(bp, 0, sizeof(*bp));
	if (hdr) {
		bp->hdr = *hdr;
		return x86_fill_boot_params(gm, ex, bp, err);
	}
	bp->hdr.boot_flag = BZ_BOOT_FLAG;
	bp->hdr.header = BZ_MAGIC;
	bp->hdr.version = BZ_VERSION_2_12;
	bp->hdr.loadflags = LOADED_HIGH;
	bp->hdr.kernel_alignment = ELF_KERNEL_ALIGNMENT;
	bp->hdr.cmdline_size = (uint32_t)(X86_CMDLINE_MAX - 1);
	bp->hdr.initrd_addr_max = ELF_INITRD_ADDR_MAX;
	return x86_fill_boot_params(gm, ex, bp, err);
}

int x86_elf_plan_extras(const struct guest_mem *gm, const struct x86_boot_config *cfg,
			const struct x86_elf *e, const struct setup_header *hdr,
			struct x86_boot_extras *ex, struct kerr *err)
{
	/* Protocol 2.06+ headers (kestrel takes 2.12+) have both limits. */
	uint64_t cmdline_max = hdr ? hdr->cmdline_size : X86_CMDLINE_MAX - 1;
	uint32_t initrd_addr_max = hdr ? hdr->initrd_addr_max : ELF_INITRD_ADDR_MAX;

	return x86_plan_extras(gm, cfg, cmdline_max, e->kernel_end, initrd_addr_max, ex, err);
}

int x86_elf_plan(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		 const struct x86_elf *e, const struct setup_header *hdr, struct x86_elf_plan *p,
		 struct kerr *err)
{
	p->entry = e->pvh ? e->pvh_entry : e->eh.e_entry;
	if (!guest_mem_ptr(gm, p->entry, 1))
		return kerr_set(err, "ELF kernel entry point 0x%llx is outside guest RAM",
				(unsigned long long)p->entry);
	if (x86_elf_plan_extras(gm, cfg, e, hdr, &p->ex, err) < 0)
		return -1;
	if (e->pvh)
		return build_pvh(gm, &p->ex, &p->pg, err);
	return build_boot_params(gm, &p->ex, hdr, &p->bp, err);
}

void x86_elf_commit(const struct guest_mem *gm, const struct x86_elf *e,
		    const struct x86_elf_plan *p, struct x86_boot *out)
{
	x86_write_extras(gm, &p->ex);
	if (e->pvh) {
		guest_mem_write(gm, X86_PVH_INFO_ADDR, &p->pg, sizeof(p->pg));
		out->mode = X86_ENTRY_PVH;
		out->info_gpa = X86_PVH_INFO_ADDR;
	} else {
		guest_mem_write(gm, X86_BOOT_PARAMS_ADDR, &p->bp, sizeof(p->bp));
		out->mode = X86_ENTRY_LINUX64;
		out->info_gpa = X86_BOOT_PARAMS_ADDR;
	}
	out->entry = p->entry;
}

int x86_elf_load(const struct guest_mem *gm, const struct x86_boot_config *cfg, struct x86_elf *e,
		 const struct setup_header *hdr, struct x86_boot *out, struct kerr *err)
{
	struct x86_elf_plan *p = malloc(sizeof(*p));
	int ret = -1;

	if (!p)
		return kerr_set(err, "out of memory");
	/* Everything is checked before the first write (check_phdrs: the segments are RAM). */
	if (x86_elf_check_ehdr(e, err) == 0 && x86_elf_check_phdrs(gm, e, err) == 0 &&
	    x86_elf_plan(gm, cfg, e, hdr, p, err) == 0 && write_segments(gm, e, err) == 0) {
		x86_elf_commit(gm, e, p, out);
		ret = 0;
	}
	free(p);
	return ret;
}

int x86_load_elf(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		 struct x86_boot *out, struct kerr *err)
{
	struct x86_elf e = {
	    .img = cfg->kernel, .len = cfg->kernel_len, .file_len = cfg->kernel_len, .fd = -1};

	out->note[0] = '\0';
	return x86_elf_load(gm, cfg, &e, NULL, out, err);
}
