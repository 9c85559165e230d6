/* x86_load_kernel picks the loader by format: bzImage, ELF, or a clear refusal. */
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

TestSuite(detect, .init = map_ram, .fini = unmap_ram);

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
