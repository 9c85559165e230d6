#include <criterion/criterion.h>
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/pvh.h"
#include "fixture_kernel_images.h"
#include "fixture_loaders.h"

struct bz_spec bz_default(void)
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

size_t bz_setup_len(const struct bz_spec *s)
{
	return ((size_t)(s->setup_sects ? s->setup_sects : 4) + 1) * 512;
}

/* A bzImage with a full setup header and a patterned protected-mode part. */
uint8_t *make_bzimage(const struct bz_spec *s, size_t *len)
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

int load_bz(const struct bz_spec *s, const char *cmdline, const uint8_t *initrd, size_t initrd_len,
	    struct x86_boot *out)
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
struct elf_spec elf_default(void)
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
uint8_t *make_elf(const struct elf_spec *s, size_t *len)
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

int load_elf(const struct elf_spec *s, const char *cmdline, const uint8_t *initrd,
	     size_t initrd_len, struct x86_boot *out)
{
	size_t len;
	uint8_t *img = make_elf(s, &len);
	struct x86_boot_config cfg = {img, len, initrd, initrd_len, cmdline, 0, false, NULL};
	int ret = x86_load_elf(&gm, &cfg, out, &err);

	free(img);
	return ret;
}
