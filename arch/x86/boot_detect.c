/* Tells a bzImage from an ELF vmlinux by its magic and hands it to the right loader. */
#include <elf.h>
#include <string.h>

#include "arch/x86/boot.h"

#define BZ_MAGIC_OFF 0x202
#define BZ_MAGIC_END (BZ_MAGIC_OFF + 4)

int x86_load_kernel(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		    struct x86_boot *out, struct kerr *err)
{
	const uint8_t *img = cfg->kernel;
	size_t len = cfg->kernel ? cfg->kernel_len : 0;

	if (len >= BZ_MAGIC_END && memcmp(img + BZ_MAGIC_OFF, "HdrS", 4) == 0)
		return x86_load_bzimage(gm, cfg, out, err);
	if (len >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0)
		return x86_load_elf(gm, cfg, out, err);
	/* Too short to tell: calling it garbage would hide a cut-off download. */
	if (len < BZ_MAGIC_END)
		return kerr_set(
		    err,
		    "kernel image is truncated: %zu bytes is too short for a bzImage or "
		    "ELF header",
		    len);
	return kerr_set(err, "not a Linux kernel image (neither a bzImage nor an ELF vmlinux)");
}
