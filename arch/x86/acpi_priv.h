/* Shared by the ACPI table writers (acpi.c, acpi_dsdt.c): not part of the public API. */
#ifndef KESTREL_X86_ACPI_PRIV_H
#define KESTREL_X86_ACPI_PRIV_H

#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"

/* The header every table but the RSDP starts with (ACPI 6.x §5.2.6). */
struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

#define ACPI_PCI_SLOTS 32

/* The DSDT's definition block (the AML after the table header) into a. */
int x86_acpi_dsdt_aml(const struct x86_acpi_desc *d, struct aml *a, struct kerr *err);

#endif
