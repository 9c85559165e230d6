/* The byte checksum of firmware tables (MP, ACPI): the value that makes the bytes sum to 0. */
#ifndef KESTREL_X86_CHECKSUM_H
#define KESTREL_X86_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

static inline uint8_t x86_table_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *b++);
	return (uint8_t)-sum;
}

#endif
