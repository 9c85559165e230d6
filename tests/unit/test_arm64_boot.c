/*
 * The arm64 Image loader and placement (arch/arm64/boot_image.c), on any host: synthetic
 * Images, raw and gzip-compressed, against a guest RAM at the arm64 base.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "arch/arm64/boot.h"

#define RAM_BASE 0x40000000ULL
#define RAM_SIZE (64ULL << 20)
#define MiB (1ULL << 20)

static struct guest_mem gm;

static void setup(void)
{
	struct guest_mem_region r = {.gpa = RAM_BASE, .size = RAM_SIZE};
	struct kerr err;

	cr_assert_eq(guest_mem_map(&gm, &r, 1, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
	guest_mem_unmap(&gm);
}

TestSuite(arm64_boot, .init = setup, .fini = teardown);

/* An Image of len bytes: header, then a recognisable pattern. */
static uint8_t *image(size_t len, uint64_t text_offset, uint64_t image_size, uint32_t magic)
{
	uint8_t *p = malloc(len);

	cr_assert_not_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + 3);
	memset(p, 0, len < ARM64_IMAGE_HEADER_LEN ? len : ARM64_IMAGE_HEADER_LEN);
	if (len >= ARM64_IMAGE_HEADER_LEN) {
		memcpy(p + 8, &text_offset, 8);
		memcpy(p + 16, &image_size, 8);
		memcpy(p + 56, &magic, 4);
	}
	return p;
}

static uint8_t *gzip(const uint8_t *src, size_t len, size_t *out_len)
{
	z_stream z = {0};
	size_t cap = len + len / 100 + 1024;
	uint8_t *dst = malloc(cap);

	cr_assert_not_null(dst);
	cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)src;
	z.avail_in = (uInt)len;
	z.next_out = dst;
	z.avail_out = (uInt)cap;
	cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	*out_len = z.total_out;
	deflateEnd(&z);
	return dst;
}

static int load(const uint8_t *p, size_t len, uint64_t base, struct arm64_kernel *k,
		struct kerr *err)
{
	return arm64_load_image(&gm, base, RAM_BASE + RAM_SIZE - base, p, len, k, err);
}

Test(arm64_boot, a_valid_image_lands_text_offset_after_the_ram_base)
{
	size_t len = 3 * MiB + 123;
	uint8_t *p = image(len, 0x80000, 4 * MiB, ARM64_IMAGE_MAGIC);
	struct arm64_kernel k;
	struct kerr err;

	cr_assert_eq(load(p, len, RAM_BASE, &k, &err), 0, "%s", err.msg);
	cr_assert_eq(k.entry, RAM_BASE + 0x80000);
	cr_assert_eq(k.end, k.entry + 4 * MiB, "image_size counts, not the file");
	cr_assert_eq(memcmp(guest_mem_ptr(&gm, k.entry, len), p, len), 0);
	free(p);
}

Test(arm64_boot, a_gzip_compressed_image_is_inflated_in_place)
{
	size_t len = 2 * MiB + 4097, zlen;
	uint8_t *p = image(len, 0, 3 * MiB, ARM64_IMAGE_MAGIC);
	uint8_t *z = gzip(p, len, &zlen);
	struct arm64_kernel k;
	struct kerr err;

	cr_assert_lt(zlen, len);
	cr_assert_eq(load(z, zlen, RAM_BASE, &k, &err), 0, "%s", err.msg);
	cr_assert_eq(k.entry, RAM_BASE);
	cr_assert_eq(k.file_bytes, len);
	cr_assert_eq(memcmp(guest_mem_ptr(&gm, k.entry, len), p, len), 0);

	/* Cut short: an error, never a partial kernel called loaded. */
	cr_assert_eq(load(z, zlen / 2, RAM_BASE, &k, &err), -1);
	cr_assert(strstr(err.msg, "gzip data is corrupt or truncated"), "%s", err.msg);
	free(z);
	free(p);
}

Test(arm64_boot, truncated_images_are_refused)
{
	uint8_t *p = image(40, 0, 0, ARM64_IMAGE_MAGIC);
	struct arm64_kernel k;
	struct kerr err;
	size_t zlen;
	uint8_t *z = gzip(p, 40, &zlen);

	cr_assert_eq(load(p, 40, RAM_BASE, &k, &err), -1);
	cr_assert_str_eq(err.msg, "kernel: 40 bytes, shorter than an arm64 Image header");
	cr_assert_eq(load(z, zlen, RAM_BASE, &k, &err), -1);
	cr_assert_str_eq(err.msg, "kernel: gzip data ends before an arm64 Image header");
	free(z);
	free(p);
}

Test(arm64_boot, a_foreign_header_is_refused)
{
	uint8_t *p = image(4096, 0, 8192, 0x464c457f /* an ELF's first bytes */);
	struct arm64_kernel k;
	struct kerr err;

	cr_assert_eq(load(p, 4096, RAM_BASE, &k, &err), -1);
	cr_assert(strstr(err.msg, "not an arm64 Image"), "%s", err.msg);
	p[24] = 1; /* big-endian flag, with a good magic */
	memcpy(p + 56, &(uint32_t){ARM64_IMAGE_MAGIC}, 4);
	cr_assert_eq(load(p, 4096, RAM_BASE, &k, &err), -1);
	cr_assert(strstr(err.msg, "big-endian"), "%s", err.msg);
	free(p);
}

Test(arm64_boot, alignment_rules)
{
	uint8_t *p = image(8192, 0x80000, 8192, ARM64_IMAGE_MAGIC);
	struct arm64_kernel k;
	struct kerr err;

	/* RAM starting off a 2 MiB boundary: the base rounds up to the next one. */
	cr_assert_eq(load(p, 8192, RAM_BASE + 0x1000, &k, &err), 0, "%s", err.msg);
	cr_assert_eq(k.entry, RAM_BASE + 2 * MiB + 0x80000);

	/* text_offset not a page offset below 2 MiB. */
	memcpy(p + 8, &(uint64_t){0x80010}, 8);
	cr_assert_eq(load(p, 8192, RAM_BASE, &k, &err), -1);
	cr_assert(strstr(err.msg, "text_offset 0x80010"), "%s", err.msg);
	memcpy(p + 8, &(uint64_t){2 * MiB}, 8);
	cr_assert_eq(load(p, 8192, RAM_BASE, &k, &err), -1);

	/* image_size 0: an old kernel, text_offset 0x80000 whatever the header says. */
	memcpy(p + 8, &(uint64_t){0}, 8);
	memcpy(p + 16, &(uint64_t){0}, 8);
	cr_assert_eq(load(p, 8192, RAM_BASE, &k, &err), 0, "%s", err.msg);
	cr_assert_eq(k.entry, RAM_BASE + ARM64_TEXT_OFFSET_OLD);
	cr_assert_eq(k.end, k.entry + 8192);
	free(p);
}

Test(arm64_boot, a_kernel_larger_than_ram_is_refused)
{
	uint8_t *p = image(4096, 0, RAM_SIZE, ARM64_IMAGE_MAGIC);
	struct arm64_kernel k;
	struct kerr err;

	cr_assert_eq(load(p, 4096, RAM_BASE, &k, &err), 0, "exactly RAM: fits");
	memcpy(p + 16, &(uint64_t){RAM_SIZE + 4096}, 8);
	cr_assert_eq(load(p, 4096, RAM_BASE, &k, &err), -1);
	cr_assert(strstr(err.msg, "do not fit in 64 MiB"), "%s", err.msg);
	memcpy(p + 16, &(uint64_t){UINT64_MAX - 4095}, 8);
	cr_assert_eq(load(p, 4096, RAM_BASE, &k, &err), -1, "wrapping sizes are refused");
	memcpy(p + 16, &(uint64_t){1024}, 8);
	cr_assert_eq(load(p, 4096, RAM_BASE, &k, &err), -1);
	cr_assert(strstr(err.msg, "smaller than the Image"), "%s", err.msg);
	free(p);
}

Test(arm64_boot, dtb_and_initrd_go_on_top_of_ram_above_the_kernel)
{
	struct arm64_kernel k = {.entry = RAM_BASE, .end = RAM_BASE + 30 * MiB};
	struct arm64_placement pl;
	struct kerr err;

	cr_assert_eq(arm64_place(RAM_BASE, RAM_SIZE, &k, 4096, 10 * MiB + 5, &pl, &err), 0, "%s",
		     err.msg);
	cr_assert_eq(pl.dtb, RAM_BASE + RAM_SIZE - 2 * MiB);
	cr_assert_eq(pl.initrd % 4096, 0);
	cr_assert_geq(pl.initrd, k.end);
	cr_assert_leq(pl.initrd + 10 * MiB + 5, pl.dtb);

	cr_assert_eq(arm64_place(RAM_BASE, RAM_SIZE, &k, 4096, 40 * MiB, &pl, &err), -1);
	cr_assert(strstr(err.msg, "initrd"), "%s", err.msg);
	cr_assert_eq(arm64_place(RAM_BASE, RAM_SIZE, &k, 3 * MiB, 0, &pl, &err), -1);
	cr_assert(strstr(err.msg, "2 MiB"), "%s", err.msg);
	k.end = RAM_BASE + RAM_SIZE - MiB;
	cr_assert_eq(arm64_place(RAM_BASE, RAM_SIZE, &k, 4096, 0, &pl, &err), -1);
}
