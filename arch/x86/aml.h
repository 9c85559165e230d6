/*
 * A small ACPI Machine Language (AML) encoder: just the objects kestrel's DSDT needs (ACPI 6.x
 * chapter 20, resource descriptors from chapter 6.4).
 *
 * Objects with a PkgLength (Scope, Device, Method, Package, Buffer, If, Field) are written in
 * two steps: aml_*_open() returns a mark, the body is appended, aml_close() (or
 * aml_buffer_close()) inserts the PkgLength once the body's size is known. Nesting needs no
 * stack: each caller keeps its own mark.
 *
 * Errors are sticky: after an allocation failure or an invalid name every call does nothing
 * and aml_ok() returns false, so a builder checks once at the end.
 */
#ifndef KESTREL_X86_AML_H
#define KESTREL_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf;
	size_t len;
	size_t cap;
	bool failed;
};

/* Largest PkgLength the 4-byte encoding can hold (2^28 - 1). */
#define AML_PKGLEN_MAX 0x0fffffffu

/* Method flags: ArgCount in bits 0-2, SerializeFlag in bit 3. */
#define AML_METHOD_ARGS(n) ((uint8_t)((n)&7))
#define AML_SERIALIZED 0x08

/* OperationRegion spaces (and Generic Address Structure space ids). */
#define AML_SYSTEM_MEMORY 0x00
#define AML_SYSTEM_IO 0x01

/* Field flags: AccessType in bits 0-3, LockRule bit 4, UpdateRule bits 5-6. */
#define AML_FIELD_DWORD_ACC 0x03

/* Extended Interrupt descriptor flags (_HE, _LL, _SHR). */
#define AML_IRQ_EDGE 0x02
#define AML_IRQ_ACTIVE_LOW 0x04
#define AML_IRQ_SHARED 0x08

/* Address space descriptor memory attributes (type-specific flags). */
#define AML_MEM_NONCACHEABLE 0x00
#define AML_MEM_CACHEABLE 0x02
#define AML_MEM_PREFETCHABLE 0x06

void aml_init(struct aml *a);
void aml_free(struct aml *a);
static inline bool aml_ok(const struct aml *a)
{
	return !a->failed;
}

/* Raw bytes. */
void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_byte(struct aml *a, uint8_t v);

/* The PkgLength encoding of len (which counts the PkgLength bytes themselves). */
void aml_pkglen(struct aml *a, uint32_t len);
/* PkgLength bytes needed for a body of n bytes (0 when too long). */
size_t aml_pkglen_size(size_t body);

/*
 * A NameString: "_SB" (one NameSeg, padded with '_' to 4), "\\_SB.PCI0" (root-relative path),
 * "^PCI0" (parent-relative). Dot-separated segments of 1-4 characters [A-Z_][A-Z0-9_]*.
 */
void aml_name(struct aml *a, const char *path);

/* Integers in the smallest encoding: ZeroOp, OneOp, Byte/Word/DWord/QWordPrefix. */
void aml_int(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
/* The 32-bit compressed EISA id of "PNP0A08" (three letters, four hex digits) as an integer. */
void aml_eisaid(struct aml *a, const char *id);
/* Its numeric value; 0 if id is malformed. */
uint32_t aml_eisaid_value(const char *id);

/* Name (path, <the next object written>). */
void aml_name_decl(struct aml *a, const char *path);
/* Name (path, v) for the common cases. */
void aml_name_int(struct aml *a, const char *path, uint64_t v);
void aml_name_string(struct aml *a, const char *path, const char *s);
void aml_name_eisaid(struct aml *a, const char *path, const char *id);

size_t aml_scope_open(struct aml *a, const char *path);
size_t aml_device_open(struct aml *a, const char *path);
size_t aml_method_open(struct aml *a, const char *path, uint8_t flags);
size_t aml_package_open(struct aml *a, uint8_t nr_elements);
size_t aml_if_open(struct aml *a);
/* Field (region, flags) { name, bits; ... }: entries through aml_field_entry(). */
size_t aml_field_open(struct aml *a, const char *region, uint8_t flags);
void aml_field_entry(struct aml *a, const char *seg, uint32_t bits);
/* Ends the object opened at mark by inserting its PkgLength. */
void aml_close(struct aml *a, size_t mark);

/* A Buffer whose size is that of its body; ResourceTemplate is one ending with aml_end_tag. */
size_t aml_buffer_open(struct aml *a);
void aml_buffer_close(struct aml *a, size_t mark);
size_t aml_restemplate_open(struct aml *a);
/* Appends the end tag (with the checksum making the template's bytes sum to 0) and closes. */
void aml_restemplate_close(struct aml *a, size_t mark);

/* OperationRegion (name, space, offset, len). */
void aml_opregion(struct aml *a, const char *name, uint8_t space, uint64_t offset, uint64_t len);
void aml_return(struct aml *a);		   /* followed by the value */
void aml_store(struct aml *a);		   /* followed by source, then target */
void aml_and(struct aml *a);		   /* followed by two operands, then a target */
void aml_notify(struct aml *a);		   /* followed by object, then value */
void aml_local(struct aml *a, unsigned n); /* Local0..Local7 */
void aml_arg(struct aml *a, unsigned n);   /* Arg0..Arg6 */
void aml_null_target(struct aml *a);

/* Resource descriptors, written inside a resource template. */
void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t size, bool writable);
void aml_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* Extended Interrupt, resource consumer; flags from AML_IRQ_*. */
void aml_interrupt(struct aml *a, uint8_t flags, uint32_t gsi);
/* Address space windows a bridge produces (MinFixed, MaxFixed, PosDecode). */
void aml_word_bus_number(struct aml *a, uint16_t min, uint16_t max);
void aml_dword_io(struct aml *a, uint32_t min, uint32_t max);
void aml_dword_memory(struct aml *a, uint8_t mem_flags, uint32_t min, uint32_t max);
void aml_qword_memory(struct aml *a, uint8_t mem_flags, uint64_t min, uint64_t max);

#endif
