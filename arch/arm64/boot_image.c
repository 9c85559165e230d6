#include "arch/arm64/boot.h"

#include <string.h>
#include <zlib.h>

/* The header every arm64 Image starts with (booting.rst), little-endian. */
struct image_header {
	uint32_t code0, code1;
	uint64_t text_offset;
	uint64_t image_size;
	uint64_t flags; /* bit 0: big-endian kernel */
	uint64_t res2, res3, res4;
	uint32_t magic;
	uint32_t res5;
};
_Static_assert(sizeof(struct image_header) == ARM64_IMAGE_HEADER_LEN, "Image header layout");

#define FLAG_BE 1ULL

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Checks the header and works out where the Image goes and how far it reaches. */
static int plan(const struct image_header *h, uint64_t ram_base, uint64_t ram_size,
		uint64_t file_bytes, struct arm64_kernel *out, struct kerr *err)
{
	uint64_t text = h->text_offset, size = h->image_size, base, ram_end = ram_base + ram_size;

	if (h->magic != ARM64_IMAGE_MAGIC)
		return kerr_set(err,
				"kernel: not an arm64 Image (no \"ARM\\x64\" magic at byte 56)");
	if (h->flags & FLAG_BE)
		return kerr_set(err,
				"kernel: a big-endian arm64 kernel (kestrel runs little-endian)");
	if (size == 0) /* before Linux 3.17: text_offset unspecified, 0x80000 in practice */
		text = ARM64_TEXT_OFFSET_OLD;
	if (text >= ARM64_KERNEL_ALIGN || (text & 0xfff))
		return kerr_set(err, "kernel: text_offset 0x%llx is not a page offset below 2 MiB",
				(unsigned long long)text);
	if (size && size < file_bytes)
		return kerr_set(err, "kernel: image_size %llu is smaller than the Image itself",
				(unsigned long long)size);
	base = align_up(ram_base, ARM64_KERNEL_ALIGN);
	out->entry = base + text;
	out->end = out->entry + (size ? size : file_bytes);
	out->file_bytes = file_bytes;
	if (base < ram_base || out->end > ram_end || out->end < out->entry)
		return kerr_set(err, "kernel: %llu bytes do not fit in %llu MiB of RAM",
				(unsigned long long)(out->end - out->entry),
				(unsigned long long)(ram_size >> 20));
	return 0;
}

static int load_raw(const struct guest_mem *gm, uint64_t ram_base, uint64_t ram_size,
		    const uint8_t *data, size_t len, struct arm64_kernel *out, struct kerr *err)
{
	struct image_header h;

	if (len < sizeof(h))
		return kerr_set(err, "kernel: %zu bytes, shorter than an arm64 Image header", len);
	memcpy(&h, data, sizeof(h));
	if (plan(&h, ram_base, ram_size, len, out, err))
		return -1;
	if (!guest_mem_write(gm, out->entry, data, len))
		return kerr_set(err, "kernel: does not fit in guest RAM");
	return 0;
}

/* Inflates into guest memory: the header first, then the rest straight to its place. */
static int load_gzip(const struct guest_mem *gm, uint64_t ram_base, uint64_t ram_size,
		     const uint8_t *data, size_t len, struct arm64_kernel *out, struct kerr *err)
{
	struct image_header h;
	z_stream z = {0};
	uint64_t room;
	uint8_t *dst;
	int rc;

	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return kerr_set(err, "kernel: zlib cannot start");
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
	z.next_out = (Bytef *)&h;
	z.avail_out = sizeof(h);
	rc = inflate(&z, Z_NO_FLUSH);
	if ((rc != Z_OK && rc != Z_STREAM_END) || z.avail_out) {
		kerr_set(err, "kernel: gzip data %s before an arm64 Image header",
			 rc == Z_STREAM_END || rc == Z_BUF_ERROR ? "ends" : "is corrupt");
		goto fail;
	}
	/* The decompressed length is not known yet: plan with the header alone, then check. */
	if (plan(&h, ram_base, ram_size, sizeof(h), out, err))
		goto fail;
	room = ram_base + ram_size - out->entry;
	dst = guest_mem_ptr(gm, out->entry, room);
	if (!dst) {
		kerr_set(err, "kernel: RAM above the load address is not contiguous");
		goto fail;
	}
	memcpy(dst, &h, sizeof(h));
	z.next_out = dst + sizeof(h);
	z.avail_out = room - sizeof(h) > UINT32_MAX ? UINT32_MAX : (uInt)(room - sizeof(h));
	rc = inflate(&z, Z_FINISH);
	if (rc != Z_STREAM_END) {
		kerr_set(err, "kernel: gzip data %s",
			 rc == Z_BUF_ERROR && !z.avail_out ? "inflate beyond the end of RAM"
							   : "is corrupt or truncated");
		goto fail;
	}
	if (plan(&h, ram_base, ram_size, z.total_out, out, err))
		goto fail;
	inflateEnd(&z);
	return 0;
fail:
	inflateEnd(&z);
	return -1;
}

int arm64_load_image(const struct guest_mem *gm, uint64_t ram_base, uint64_t ram_size,
		     const uint8_t *data, size_t len, struct arm64_kernel *out, struct kerr *err)
{
	if (len >= 2 && data[0] == 0x1f && data[1] == 0x8b)
		return load_gzip(gm, ram_base, ram_size, data, len, out, err);
	return load_raw(gm, ram_base, ram_size, data, len, out, err);
}

int arm64_place(uint64_t ram_base, uint64_t ram_size, const struct arm64_kernel *k, size_t dtb_len,
		size_t initrd_len, struct arm64_placement *out, struct kerr *err)
{
	uint64_t top = ram_base + ram_size, dtb, initrd = 0;

	if (dtb_len > ARM64_DTB_MAX)
		return kerr_set(err, "device tree of %zu bytes: the boot protocol allows 2 MiB",
				dtb_len);
	/* The DTB alone in the last 2 MiB-aligned slot, so it never straddles a 2 MiB block. */
	dtb = (top - ARM64_DTB_MAX) & ~(ARM64_DTB_MAX - 1);
	if (dtb < k->end || top < ARM64_DTB_MAX)
		return kerr_set(err, "no room for the device tree above the kernel");
	if (initrd_len) {
		if (initrd_len > dtb - k->end)
			return kerr_set(err,
					"initrd: %zu bytes do not fit between the kernel and the "
					"device tree",
					initrd_len);
		initrd = (dtb - initrd_len) & ~0xfffULL;
		if (initrd < k->end)
			return kerr_set(err, "initrd: %zu bytes do not fit above the kernel",
					initrd_len);
	}
	out->dtb = dtb;
	out->initrd = initrd;
	return 0;
}
