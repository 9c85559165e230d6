/*
 * The AML encoder against byte strings worked out by hand from the ACPI 6.x grammar (§20.2)
 * and resource descriptor layouts (§6.4); the comments give the ASL each string encodes.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "arch/x86/aml.h"

static struct aml a;

static void setup(void)
{
	aml_init(&a);
}
static void teardown(void)
{
	aml_free(&a);
}

TestSuite(aml, .init = setup, .fini = teardown);

#define EXPECT(...)                                                                                \
	do {                                                                                       \
		const uint8_t want_[] = {__VA_ARGS__};                                             \
		expect_bytes(want_, sizeof(want_));                                                \
	} while (0)

static void expect_bytes(const uint8_t *want, size_t n)
{
	cr_assert(aml_ok(&a), "builder failed");
	cr_assert_eq(a.len, n, "length %zu, want %zu", a.len, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(a.buf[i], want[i], "byte %zu: %#x, want %#x", i, a.buf[i], want[i]);
	a.len = 0;
}

Test(aml, pkglen_at_each_size_boundary)
{
	aml_pkglen(&a, 0);
	EXPECT(0x00);
	aml_pkglen(&a, 63);
	EXPECT(0x3f);
	aml_pkglen(&a, 64); /* two bytes: lead 0x4N, then bits 4-11 */
	EXPECT(0x40, 0x04);
	aml_pkglen(&a, 4095);
	EXPECT(0x4f, 0xff);
	aml_pkglen(&a, 4096);
	EXPECT(0x80, 0x00, 0x01);
	aml_pkglen(&a, 0xfffff);
	EXPECT(0x8f, 0xff, 0xff);
	aml_pkglen(&a, 0x100000);
	EXPECT(0xc0, 0x00, 0x00, 0x01);
	aml_pkglen(&a, 0xfffffff);
	EXPECT(0xcf, 0xff, 0xff, 0xff);
	aml_pkglen(&a, 0x10000000);
	cr_assert_not(aml_ok(&a), "2^28 does not fit a PkgLength");
}

Test(aml, pkglen_size_counts_itself)
{
	cr_assert_eq(aml_pkglen_size(62), 1);
	cr_assert_eq(aml_pkglen_size(63), 2);
	cr_assert_eq(aml_pkglen_size(4093), 2);
	cr_assert_eq(aml_pkglen_size(4094), 3);
	cr_assert_eq(aml_pkglen_size(0xfffff - 3), 3);
	cr_assert_eq(aml_pkglen_size(0xfffff - 2), 4);
	cr_assert_eq(aml_pkglen_size(0xfffffff - 4), 4);
	cr_assert_eq(aml_pkglen_size(0xfffffff - 3), 0);
}

/* Scope (ABCD) with n filler bytes: the PkgLength grows as the body crosses each boundary. */
static void scope_of(size_t n, size_t want_pkglen_bytes, uint32_t want_len)
{
	uint8_t fill[5000];

	memset(fill, 0xa3, n); /* AML Noop */
	size_t m = aml_scope_open(&a, "ABCD");
	aml_bytes(&a, fill, n);
	aml_close(&a, m);
	cr_assert(aml_ok(&a));
	cr_assert_eq(a.len, 1 + want_pkglen_bytes + 4 + n);
	cr_assert_eq(a.buf[0], 0x10);
	uint32_t len = a.buf[1] & (want_pkglen_bytes == 1 ? 0x3f : 0x0f);
	for (size_t i = 1; i < want_pkglen_bytes; i++)
		len |= (uint32_t)a.buf[1 + i] << (4 + 8 * (i - 1));
	cr_assert_eq(a.buf[1] >> 6, want_pkglen_bytes - 1);
	cr_assert_eq(len, want_len, "PkgLength %u, want %u", len, want_len);
	cr_assert_eq(memcmp(a.buf + 1 + want_pkglen_bytes, "ABCD", 4), 0);
	a.len = 0;
}

Test(aml, scope_pkglen_grows_with_its_body)
{
	scope_of(58, 1, 63);	 /* name + 58 = 62, plus one PkgLength byte */
	scope_of(59, 2, 65);	 /* 63 + 1 would be 64: two bytes */
	scope_of(4089, 2, 4095); /* 4093 + 2 */
	scope_of(4090, 3, 4097); /* 4094 + 2 would be 4096: three bytes */
}

Test(aml, integers_at_each_width_boundary)
{
	aml_int(&a, 0);
	EXPECT(0x00); /* ZeroOp */
	aml_int(&a, 1);
	EXPECT(0x01); /* OneOp */
	aml_int(&a, 2);
	EXPECT(0x0a, 0x02);
	aml_int(&a, 0xff);
	EXPECT(0x0a, 0xff);
	aml_int(&a, 0x100);
	EXPECT(0x0b, 0x00, 0x01);
	aml_int(&a, 0xffff);
	EXPECT(0x0b, 0xff, 0xff);
	aml_int(&a, 0x10000);
	EXPECT(0x0c, 0x00, 0x00, 0x01, 0x00);
	aml_int(&a, 0xffffffff);
	EXPECT(0x0c, 0xff, 0xff, 0xff, 0xff);
	aml_int(&a, 0x100000000ULL);
	EXPECT(0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00);
	aml_int(&a, UINT64_MAX);
	EXPECT(0x0e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
}

Test(aml, string)
{
	aml_string(&a, "LNRO0005");
	EXPECT(0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00);
}

Test(aml, name_strings)
{
	aml_name(&a, "_SB");
	EXPECT('_', 'S', 'B', '_');
	aml_name(&a, "\\_SB.PCI0"); /* RootChar DualNamePrefix */
	EXPECT('\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0');
	aml_name(&a, "\\_SB.PCI0.COM1"); /* MultiNamePrefix SegCount */
	EXPECT('\\', 0x2f, 0x03, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'C', 'O', 'M', '1');
	aml_name(&a, "^PWRB");
	EXPECT('^', 'P', 'W', 'R', 'B');
	aml_name(&a, "\\_S5");
	EXPECT('\\', '_', 'S', '5', '_');
	aml_name(&a, "\\");
	EXPECT('\\', 0x00); /* NullName */
}

Test(aml, bad_names_fail)
{
	const char *bad[] = {"1ABC", "ABCDE", "abcd", "A..B", "\\_SB.", "A-B"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct aml b;
		aml_init(&b);
		aml_name(&b, bad[i]);
		cr_assert_not(aml_ok(&b), "\"%s\" accepted", bad[i]);
		aml_free(&b);
	}
}

Test(aml, eisaid)
{
	aml_eisaid(&a, "PNP0A08");
	EXPECT(0x0c, 0x41, 0xd0, 0x0a, 0x08);
	cr_assert_eq(aml_eisaid_value("PNP0A03"), 0x030ad041);
	cr_assert_eq(aml_eisaid_value("PNP0501"), 0x0105d041);
	cr_assert_eq(aml_eisaid_value("PNP0C0C"), 0x0c0cd041);
	cr_assert_eq(aml_eisaid_value("PNP0C02"), 0x020cd041);
	cr_assert_eq(aml_eisaid_value("pnp0a03"), 0);
	cr_assert_eq(aml_eisaid_value("PNP0A0"), 0);
	cr_assert_eq(aml_eisaid_value("PNP0A0G"), 0);
	aml_eisaid(&a, "PNP0A0G");
	cr_assert_not(aml_ok(&a));
}

Test(aml, name_and_device)
{
	aml_name_int(&a, "_UID", 0); /* Name (_UID, Zero) */
	EXPECT(0x08, '_', 'U', 'I', 'D', 0x00);
	aml_name_string(&a, "_HID", "ACPI0013");
	EXPECT(0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P', 'I', '0', '0', '1', '3', 0x00);
	/* Device (COM1) { Name (_UID, Zero) } */
	size_t d = aml_device_open(&a, "COM1");
	aml_name_int(&a, "_UID", 0);
	aml_close(&a, d);
	EXPECT(0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x00);
}

Test(aml, method_return_package)
{
	/* Method (_STA, 0, NotSerialized) { Return (0x0F) } */
	size_t m = aml_method_open(&a, "_STA", AML_METHOD_ARGS(0));
	aml_return(&a);
	aml_int(&a, 0x0f);
	aml_close(&a, m);
	EXPECT(0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f);
	/* Method (_EVT, 1, Serialized) {} */
	m = aml_method_open(&a, "_EVT", AML_METHOD_ARGS(1) | AML_SERIALIZED);
	aml_close(&a, m);
	EXPECT(0x14, 0x06, '_', 'E', 'V', 'T', 0x09);
	/* Package (0x02) { One, 0x02 } */
	size_t p = aml_package_open(&a, 2);
	aml_int(&a, 1);
	aml_int(&a, 2);
	aml_close(&a, p);
	EXPECT(0x12, 0x05, 0x02, 0x01, 0x0a, 0x02);
}

Test(aml, ged_event_method_body)
{
	/* OperationRegion (EREG, SystemIO, 0x0604, 0x04) */
	aml_opregion(&a, "EREG", AML_SYSTEM_IO, 0x604, 4);
	EXPECT(0x5b, 0x80, 'E', 'R', 'E', 'G', 0x01, 0x0b, 0x04, 0x06, 0x0a, 0x04);
	/* Field (EREG, DWordAcc, NoLock, Preserve) { ESEL, 32 } */
	size_t f = aml_field_open(&a, "EREG", AML_FIELD_DWORD_ACC);
	aml_field_entry(&a, "ESEL", 32);
	aml_close(&a, f);
	EXPECT(0x5b, 0x81, 0x0b, 'E', 'R', 'E', 'G', 0x03, 'E', 'S', 'E', 'L', 0x20);
	/* Local0 = ESEL; If ((Local0 & One)) { Notify (PWRB, 0x80) } */
	aml_store(&a);
	aml_name(&a, "ESEL");
	aml_local(&a, 0);
	size_t c = aml_if_open(&a);
	aml_and(&a);
	aml_local(&a, 0);
	aml_int(&a, 1);
	aml_null_target(&a);
	aml_notify(&a);
	aml_name(&a, "PWRB");
	aml_int(&a, 0x80);
	aml_close(&a, c);
	EXPECT(0x70, 'E', 'S', 'E', 'L', 0x60, 0xa0, 0x0c, 0x7b, 0x60, 0x01, 0x00, 0x86, 'P', 'W',
	       'R', 'B', 0x0a, 0x80);
	aml_arg(&a, 6);
	EXPECT(0x6e);
	aml_local(&a, 8);
	cr_assert_not(aml_ok(&a));
}

Test(aml, empty_resource_template)
{
	/* ResourceTemplate () {}: Buffer (0x02) { 0x79, checksum } */
	size_t r = aml_restemplate_open(&a);
	aml_restemplate_close(&a, r);
	EXPECT(0x11, 0x05, 0x0a, 0x02, 0x79, 0x87);
}

/* The descriptor bytes of a one-descriptor template, with its end tag checked. */
static void expect_descriptor(const uint8_t *want, size_t n)
{
	cr_assert(aml_ok(&a));
	cr_assert_eq(a.len, 1 + 1 + 2 + n + 2, "template of %zu bytes", a.len);
	cr_assert_eq(a.buf[0], 0x11);
	cr_assert_eq(a.buf[1], a.len - 1, "PkgLength");
	cr_assert_eq(a.buf[2], 0x0a);
	cr_assert_eq(a.buf[3], n + 2, "BufferSize");
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(a.buf[4 + i], want[i], "byte %zu: %#x, want %#x", i, a.buf[4 + i],
			     want[i]);
	cr_assert_eq(a.buf[4 + n], 0x79, "end tag");
	uint8_t sum = 0;
	for (size_t i = 4; i < a.len; i++)
		sum = (uint8_t)(sum + a.buf[i]);
	cr_assert_eq(sum, 0, "resource template checksum");
	a.len = 0;
}

#define DESCRIPTOR(call, ...)                                                                      \
	do {                                                                                       \
		const uint8_t want_[] = {__VA_ARGS__};                                             \
		size_t r_ = aml_restemplate_open(&a);                                              \
		call;                                                                              \
		aml_restemplate_close(&a, r_);                                                     \
		expect_descriptor(want_, sizeof(want_));                                           \
	} while (0)

Test(aml, resource_descriptors)
{
	/* Memory32Fixed (ReadWrite, 0xD0000000, 0x00001000) */
	DESCRIPTOR(aml_memory32_fixed(&a, 0xd0000000, 0x1000, true), 0x86, 0x09, 0x00, 0x01, 0x00,
		   0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00);
	/* IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08) */
	DESCRIPTOR(aml_io(&a, 0x3f8, 0x3f8, 1, 8), 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08);
	/* Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 4 } */
	DESCRIPTOR(aml_interrupt(&a, AML_IRQ_EDGE, 4), 0x89, 0x06, 0x00, 0x03, 0x01, 0x04, 0x00,
		   0x00, 0x00);
	/* Interrupt (ResourceConsumer, Level, ActiveLow, Shared) { 0x20 } */
	DESCRIPTOR(aml_interrupt(&a, AML_IRQ_ACTIVE_LOW | AML_IRQ_SHARED, 0x20), 0x89, 0x06, 0x00,
		   0x0d, 0x01, 0x20, 0x00, 0x00, 0x00);
	/* WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xFF, 0, 0x100) */
	DESCRIPTOR(aml_word_bus_number(&a, 0, 0xff), 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00,
		   0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x01);
	/* DWordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
	 *          0, 0x1000, 0xFFFF, 0, 0xF000) */
	DESCRIPTOR(aml_dword_io(&a, 0x1000, 0xffff), 0x87, 0x17, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00,
		   0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00,
		   0x00, 0x00, 0xf0, 0x00, 0x00);
	/* DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable,
	 *              ReadWrite, 0, 0xC0000000, 0xDFFFFFFF, 0, 0x20000000) */
	DESCRIPTOR(aml_dword_memory(&a, AML_MEM_NONCACHEABLE, 0xc0000000, 0xdfffffff), 0x87, 0x17,
		   0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xff,
		   0xff, 0xff, 0xdf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20);
	/* QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Prefetchable,
	 *              ReadWrite, 0, 0x8000000000, 0xFFFFFFFFFF, 0, 0x8000000000) */
	DESCRIPTOR(aml_qword_memory(&a, AML_MEM_PREFETCHABLE, 0x8000000000ULL, 0xffffffffffULL),
		   0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x07,	  /* header, flags */
		   0, 0, 0, 0, 0, 0, 0, 0,		  /* granularity */
		   0, 0, 0, 0, 0x80, 0, 0, 0,		  /* minimum */
		   0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, /* maximum */
		   0, 0, 0, 0, 0, 0, 0, 0,		  /* translation */
		   0, 0, 0, 0, 0x80, 0, 0, 0);		  /* length */
}

Test(aml, resource_template_size_in_a_word)
{
	/* 22 Memory32Fixed descriptors: 266 bytes, so BufferSize takes a WordPrefix. */
	size_t r = aml_restemplate_open(&a);
	for (int i = 0; i < 22; i++)
		aml_memory32_fixed(&a, 0x1000u * (unsigned)i, 0x1000, true);
	aml_restemplate_close(&a, r);
	cr_assert(aml_ok(&a));
	cr_assert_eq(a.buf[0], 0x11);
	cr_assert_eq(a.buf[1], 0x40 | ((a.len - 1) & 0xf));
	cr_assert_eq(a.buf[2], (a.len - 1) >> 4);
	cr_assert_eq(a.buf[3], 0x0b);
	cr_assert_eq(a.buf[4] | a.buf[5] << 8, 22 * 12 + 2);
	cr_assert_eq(a.len, 6 + 22 * 12 + 2);
}

Test(aml, errors_are_sticky_and_growth_has_no_cap)
{
	static uint8_t big[1 << 20];

	for (int i = 0; i < 8; i++)
		aml_bytes(&a, big, sizeof(big));
	cr_assert(aml_ok(&a));
	cr_assert_eq(a.len, 8u << 20);

	/* A size no buffer can grow to fails without touching memory, and stays failed. */
	aml_bytes(&a, big, SIZE_MAX - 16);
	cr_assert_not(aml_ok(&a));
	size_t len = a.len;
	aml_int(&a, 5);
	size_t m = aml_scope_open(&a, "ABCD");
	aml_close(&a, m);
	cr_assert_eq(a.len, len, "a failed builder still wrote");
}
