/* The AML encoder (ACPI 6.x §20.2 grammar, §6.4 resource descriptors). */
#include "arch/x86/aml.h"

#include <stdlib.h>
#include <string.h>

enum {
	ZERO_OP = 0x00,
	ONE_OP = 0x01,
	NAME_OP = 0x08,
	BYTE_PREFIX = 0x0a,
	WORD_PREFIX = 0x0b,
	DWORD_PREFIX = 0x0c,
	STRING_PREFIX = 0x0d,
	QWORD_PREFIX = 0x0e,
	SCOPE_OP = 0x10,
	BUFFER_OP = 0x11,
	PACKAGE_OP = 0x12,
	METHOD_OP = 0x14,
	DUAL_NAME_PREFIX = 0x2e,
	MULTI_NAME_PREFIX = 0x2f,
	EXT_OP_PREFIX = 0x5b,
	LOCAL0_OP = 0x60,
	ARG0_OP = 0x68,
	STORE_OP = 0x70,
	AND_OP = 0x7b,
	NOTIFY_OP = 0x86,
	IF_OP = 0xa0,
	RETURN_OP = 0xa4,
	/* after EXT_OP_PREFIX */
	OPREGION_OP = 0x80,
	FIELD_OP = 0x81,
	DEVICE_OP = 0x82,
};

/* Resource descriptor tags: small items are one byte (type << 3 | length), large ones 0x80|type. */
enum {
	RES_IO = 0x47,
	RES_END_TAG = 0x79,
	RES_MEMORY32_FIXED = 0x86,
	RES_DWORD_ADDRESS = 0x87,
	RES_WORD_ADDRESS = 0x88,
	RES_EXT_IRQ = 0x89,
	RES_QWORD_ADDRESS = 0x8a,
};

enum { ADDR_MEMORY = 0, ADDR_IO = 1, ADDR_BUS = 2 };
#define ADDR_MIN_MAX_FIXED 0x0c /* _MIF | _MAF; producer, positive decode */
#define ADDR_IO_ENTIRE_RANGE 0x03
#define MEM_READ_WRITE 0x01

void aml_init(struct aml *a)
{
	*a = (struct aml){0};
}

void aml_free(struct aml *a)
{
	free(a->buf);
	aml_init(a);
}

static bool reserve(struct aml *a, size_t n)
{
	if (a->failed)
		return false;
	if (n <= a->cap - a->len)
		return true;
	size_t cap = a->cap ? a->cap : 256;
	while (cap - a->len < n) {
		if (cap > SIZE_MAX / 2)
			goto fail;
		cap *= 2;
	}
	uint8_t *p = realloc(a->buf, cap);
	if (!p)
		goto fail;
	a->buf = p;
	a->cap = cap;
	return true;
fail:
	a->failed = true;
	return false;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (!reserve(a, n))
		return;
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t v)
{
	aml_bytes(a, &v, 1);
}

static void insert(struct aml *a, size_t at, const uint8_t *p, size_t n)
{
	if (at > a->len || !reserve(a, n))
		return;
	memmove(a->buf + at + n, a->buf + at, a->len - at);
	memcpy(a->buf + at, p, n);
	a->len += n;
}

static void put_le(uint8_t *out, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

static void le(struct aml *a, uint64_t v, unsigned n)
{
	uint8_t b[8];

	put_le(b, v, n);
	aml_bytes(a, b, n);
}

/* Bytes of the PkgLength encoding of len; 0 when len needs more than 28 bits. */
static size_t pkglen_encode(uint32_t len, uint8_t out[4])
{
	size_t n;

	if (len <= 0x3f) {
		out[0] = (uint8_t)len;
		return 1;
	}
	if (len <= 0xfff)
		n = 2;
	else if (len <= 0xfffff)
		n = 3;
	else if (len <= AML_PKGLEN_MAX)
		n = 4;
	else
		return 0;
	/* Lead byte: count of following bytes in bits 6-7, the low nibble in bits 0-3. */
	out[0] = (uint8_t)((n - 1) << 6 | (len & 0x0f));
	for (size_t i = 1; i < n; i++)
		out[i] = (uint8_t)(len >> (4 + 8 * (i - 1)));
	return n;
}

void aml_pkglen(struct aml *a, uint32_t len)
{
	uint8_t b[4];
	size_t n = pkglen_encode(len, b);

	if (!n)
		a->failed = true;
	else
		aml_bytes(a, b, n);
}

size_t aml_pkglen_size(size_t body)
{
	for (size_t n = 1; n <= 4; n++) {
		uint32_t max = n == 1 ? 0x3f : (1u << (4 + 8 * (n - 1))) - 1;
		if (body <= max - n)
			return n;
	}
	return 0;
}

/* Inserts at mark the PkgLength covering itself, prefix and everything after mark. */
static void close_with_prefix(struct aml *a, size_t mark, const uint8_t *prefix, size_t plen)
{
	uint8_t b[4 + 9];
	size_t body, n;

	if (a->failed || mark > a->len)
		return;
	body = a->len - mark + plen;
	n = aml_pkglen_size(body);
	if (!n || !pkglen_encode((uint32_t)(body + n), b)) {
		a->failed = true;
		return;
	}
	if (plen) /* memcpy's source may not be NULL, even for 0 bytes */
		memcpy(b + n, prefix, plen);
	insert(a, mark, b, n + plen);
}

void aml_close(struct aml *a, size_t mark)
{
	close_with_prefix(a, mark, NULL, 0);
}

static bool seg_char_ok(char c, bool lead)
{
	return (c >= 'A' && c <= 'Z') || c == '_' || (!lead && c >= '0' && c <= '9');
}

/* Writes one NameSeg from s (up to '.' or the end), padded with '_'; returns its length. */
static size_t name_seg(struct aml *a, const char *s)
{
	size_t n = strcspn(s, ".");
	char seg[4] = {'_', '_', '_', '_'};

	if (n == 0 || n > 4)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (!seg_char_ok(s[i], i == 0))
			goto bad;
		seg[i] = s[i];
	}
	aml_bytes(a, seg, 4);
	return n;
bad:
	a->failed = true;
	return 0;
}

void aml_name(struct aml *a, const char *path)
{
	size_t segs = 0;

	if (*path == '\\')
		aml_byte(a, (uint8_t)*path++);
	else
		while (*path == '^')
			aml_byte(a, (uint8_t)*path++);
	if (*path) {
		segs = 1;
		for (const char *p = path; *p; p++)
			segs += *p == '.';
	}
	if (segs == 0) {
		aml_byte(a, ZERO_OP); /* NullName */
		return;
	}
	if (segs == 2)
		aml_byte(a, DUAL_NAME_PREFIX);
	else if (segs > 2) {
		if (segs > 255) {
			a->failed = true;
			return;
		}
		aml_byte(a, MULTI_NAME_PREFIX);
		aml_byte(a, (uint8_t)segs);
	}
	for (size_t i = 0; i < segs && !a->failed; i++) {
		path += name_seg(a, path);
		if (*path == '.')
			path++;
	}
}

/* The integer's encoding in out (at most 9 bytes); returns its length. */
static size_t int_encode(uint64_t v, uint8_t out[9])
{
	unsigned width;

	if (v <= 1) {
		out[0] = v ? ONE_OP : ZERO_OP;
		return 1;
	}
	if (v <= UINT8_MAX) {
		out[0] = BYTE_PREFIX;
		width = 1;
	} else if (v <= UINT16_MAX) {
		out[0] = WORD_PREFIX;
		width = 2;
	} else if (v <= UINT32_MAX) {
		out[0] = DWORD_PREFIX;
		width = 4;
	} else {
		out[0] = QWORD_PREFIX;
		width = 8;
	}
	put_le(out + 1, v, width);
	return 1 + width;
}

void aml_int(struct aml *a, uint64_t v)
{
	uint8_t b[9];

	aml_bytes(a, b, int_encode(v, b));
}

void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

uint32_t aml_eisaid_value(const char *id)
{
	uint8_t b[4] = {0};

	if (strlen(id) != 7)
		return 0;
	for (int i = 0; i < 3; i++)
		if (id[i] < 'A' || id[i] > 'Z')
			return 0;
	for (int i = 3; i < 7; i++)
		if (hex_digit(id[i]) < 0)
			return 0;
	/* Letters as 5-bit values ('A' = 1), big-endian in the first two bytes, then BCD-like. */
	unsigned c1 = (unsigned)(id[0] - '@'), c2 = (unsigned)(id[1] - '@'),
		 c3 = (unsigned)(id[2] - '@');
	b[0] = (uint8_t)(c1 << 2 | c2 >> 3);
	b[1] = (uint8_t)((c2 & 7) << 5 | c3);
	b[2] = (uint8_t)(hex_digit(id[3]) << 4 | hex_digit(id[4]));
	b[3] = (uint8_t)(hex_digit(id[5]) << 4 | hex_digit(id[6]));
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v = aml_eisaid_value(id);

	if (!v) {
		a->failed = true;
		return;
	}
	/* Always a DWord, as ASL compilers emit it, whatever its value. */
	aml_byte(a, DWORD_PREFIX);
	le(a, v, 4);
}

void aml_name_decl(struct aml *a, const char *path)
{
	aml_byte(a, NAME_OP);
	aml_name(a, path);
}

void aml_name_int(struct aml *a, const char *path, uint64_t v)
{
	aml_name_decl(a, path);
	aml_int(a, v);
}

void aml_name_string(struct aml *a, const char *path, const char *s)
{
	aml_name_decl(a, path);
	aml_string(a, s);
}

void aml_name_eisaid(struct aml *a, const char *path, const char *id)
{
	aml_name_decl(a, path);
	aml_eisaid(a, id);
}

/* Writes the opcode(s), returns the mark where the PkgLength goes, then the name if any. */
static size_t open_op(struct aml *a, uint8_t ext, uint8_t op, const char *path)
{
	size_t mark;

	if (ext)
		aml_byte(a, ext);
	aml_byte(a, op);
	mark = a->len;
	if (path)
		aml_name(a, path);
	return mark;
}

size_t aml_scope_open(struct aml *a, const char *path)
{
	return open_op(a, 0, SCOPE_OP, path);
}

size_t aml_device_open(struct aml *a, const char *path)
{
	return open_op(a, EXT_OP_PREFIX, DEVICE_OP, path);
}

size_t aml_method_open(struct aml *a, const char *path, uint8_t flags)
{
	size_t mark = open_op(a, 0, METHOD_OP, path);

	aml_byte(a, flags);
	return mark;
}

size_t aml_package_open(struct aml *a, uint8_t nr_elements)
{
	size_t mark = open_op(a, 0, PACKAGE_OP, NULL);

	aml_byte(a, nr_elements);
	return mark;
}

size_t aml_if_open(struct aml *a)
{
	return open_op(a, 0, IF_OP, NULL);
}

size_t aml_field_open(struct aml *a, const char *region, uint8_t flags)
{
	size_t mark = open_op(a, EXT_OP_PREFIX, FIELD_OP, region);

	aml_byte(a, flags);
	return mark;
}

void aml_field_entry(struct aml *a, const char *seg, uint32_t bits)
{
	if (strchr(seg, '.')) {
		a->failed = true;
		return;
	}
	name_seg(a, seg);
	aml_pkglen(a, bits); /* a field width is a PkgLength that does not count itself */
}

size_t aml_buffer_open(struct aml *a)
{
	return open_op(a, 0, BUFFER_OP, NULL);
}

void aml_buffer_close(struct aml *a, size_t mark)
{
	uint8_t size[9];

	if (a->failed || mark > a->len)
		return;
	close_with_prefix(a, mark, size, int_encode(a->len - mark, size));
}

size_t aml_restemplate_open(struct aml *a)
{
	return aml_buffer_open(a);
}

void aml_restemplate_close(struct aml *a, size_t mark)
{
	uint8_t sum = RES_END_TAG;

	if (a->failed || mark > a->len)
		return;
	for (size_t i = mark; i < a->len; i++)
		sum = (uint8_t)(sum + a->buf[i]);
	aml_byte(a, RES_END_TAG);
	aml_byte(a, (uint8_t)-sum);
	aml_buffer_close(a, mark);
}

void aml_opregion(struct aml *a, const char *name, uint8_t space, uint64_t offset, uint64_t len)
{
	aml_byte(a, EXT_OP_PREFIX);
	aml_byte(a, OPREGION_OP);
	aml_name(a, name);
	aml_byte(a, space);
	aml_int(a, offset);
	aml_int(a, len);
}

void aml_return(struct aml *a)
{
	aml_byte(a, RETURN_OP);
}
void aml_store(struct aml *a)
{
	aml_byte(a, STORE_OP);
}
void aml_and(struct aml *a)
{
	aml_byte(a, AND_OP);
}
void aml_notify(struct aml *a)
{
	aml_byte(a, NOTIFY_OP);
}
void aml_null_target(struct aml *a)
{
	aml_byte(a, ZERO_OP);
}

void aml_local(struct aml *a, unsigned n)
{
	if (n > 7)
		a->failed = true;
	else
		aml_byte(a, (uint8_t)(LOCAL0_OP + n));
}

void aml_arg(struct aml *a, unsigned n)
{
	if (n > 6)
		a->failed = true;
	else
		aml_byte(a, (uint8_t)(ARG0_OP + n));
}

void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t size, bool writable)
{
	aml_byte(a, RES_MEMORY32_FIXED);
	le(a, 9, 2);
	aml_byte(a, writable ? MEM_READ_WRITE : 0);
	le(a, base, 4);
	le(a, size, 4);
}

void aml_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	aml_byte(a, RES_IO);
	aml_byte(a, 0x01); /* decodes 16 address bits */
	le(a, min, 2);
	le(a, max, 2);
	aml_byte(a, align);
	aml_byte(a, len);
}

void aml_interrupt(struct aml *a, uint8_t flags, uint32_t gsi)
{
	aml_byte(a, RES_EXT_IRQ);
	le(a, 6, 2);
	aml_byte(a, (uint8_t)(flags | 0x01)); /* bit 0: resource consumer */
	aml_byte(a, 1);			      /* one interrupt number follows */
	le(a, gsi, 4);
}

/*
 * Word, DWord and QWord address space descriptors share one layout: type, flags, then
 * granularity, minimum, maximum, translation offset and length, each `width` bytes.
 */
static void address_space(struct aml *a, uint8_t tag, unsigned width, uint8_t type,
			  uint8_t type_flags, uint64_t min, uint64_t max)
{
	aml_byte(a, tag);
	le(a, 3 + 5 * width, 2);
	aml_byte(a, type);
	aml_byte(a, ADDR_MIN_MAX_FIXED);
	aml_byte(a, type_flags);
	le(a, 0, width);
	le(a, min, width);
	le(a, max, width);
	le(a, 0, width);
	le(a, max - min + 1, width);
}

void aml_word_bus_number(struct aml *a, uint16_t min, uint16_t max)
{
	address_space(a, RES_WORD_ADDRESS, 2, ADDR_BUS, 0, min, max);
}

void aml_dword_io(struct aml *a, uint32_t min, uint32_t max)
{
	address_space(a, RES_DWORD_ADDRESS, 4, ADDR_IO, ADDR_IO_ENTIRE_RANGE, min, max);
}

void aml_dword_memory(struct aml *a, uint8_t mem_flags, uint32_t min, uint32_t max)
{
	address_space(a, RES_DWORD_ADDRESS, 4, ADDR_MEMORY, mem_flags | MEM_READ_WRITE, min, max);
}

void aml_qword_memory(struct aml *a, uint8_t mem_flags, uint64_t min, uint64_t max)
{
	address_space(a, RES_QWORD_ADDRESS, 8, ADDR_MEMORY, mem_flags | MEM_READ_WRITE, min, max);
}
