/*
 * ACPI tables for an x86 guest on the hardware-reduced ACPI profile (no PM1 blocks, no GPEs,
 * no SCI): RSDP, XSDT, FADT, MADT, MCFG and a DSDT. The caller describes the machine with plain
 * numbers; nothing here knows which device sits behind an address or a GSI.
 *
 * What the VMM must decode for these tables to work (all registers 8-bit unless said):
 *
 *   pm_port + 0  SLEEP_CONTROL_REG (write). Bits 4:2 SLP_TYP, bit 5 SLP_EN. A write with
 *                SLP_EN set and SLP_TYP == X86_ACPI_S5_SLP_TYP (the value \_S5 gives) is the
 *                guest's poweroff (Linux writes 0x34). Other writes are ignored.
 *   pm_port + 1  SLEEP_STATUS_REG. Reads 0 (WAK_STS, bit 7, never set: no wake from S5);
 *                writes (Linux clears WAK_STS before sleeping) are ignored.
 *   pm_port + 2  RESET_REG (write). X86_ACPI_RESET_VALUE is a reboot; other values ignored.
 *
 *   GED event register (ged.addr, 32 bits, in I/O or memory space as ged.space says): reads
 *                return the pending events (X86_ACPI_GED_EVT_*) and clear them; writes are
 *                ignored. To raise an event the VMM sets its bit and pulses ged.gsi (the
 *                interrupt is declared edge-triggered, active high); the guest's _EVT method
 *                reads the register once per interrupt. X86_ACPI_GED_EVT_POWER_BUTTON makes the
 *                guest Notify (\_SB.PWRB, 0x80): a power-button press (systemd powers off).
 */
#ifndef KESTREL_X86_ACPI_H
#define KESTREL_X86_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/guest_mem.h"

#define X86_ACPI_S5_SLP_TYP 5
#define X86_ACPI_SLP_TYP_SHIFT 2
#define X86_ACPI_SLP_TYP_MASK 0x1c
#define X86_ACPI_SLP_EN 0x20
#define X86_ACPI_RESET_VALUE 0x01
#define X86_ACPI_GED_EVT_POWER_BUTTON 0x1u

/* A GSI no interrupt is routed to (x86_acpi_desc.pci.intx_gsi skips the pin). */
#define X86_ACPI_NO_GSI UINT32_MAX

enum x86_acpi_space { X86_ACPI_SPACE_MEMORY = 0, X86_ACPI_SPACE_IO = 1 };

struct x86_acpi_mmio_dev {
	uint64_t base; /* below 4 GiB: declared with Memory32Fixed */
	uint32_t size;
	uint32_t gsi;
	bool level; /* level-triggered (active high); else edge */
};

struct x86_acpi_desc {
	unsigned int nr_cpus;
	const uint32_t *apic_ids; /* nr_cpus ids; NULL: 0, 1, ... nr_cpus - 1 */
	uint64_t lapic_addr;
	uint64_t ioapic_addr;
	uint8_t ioapic_id;

	struct {
		bool present;
		uint64_t
		    ecam_base; /* of bus 0; MCFG and the motherboard reservation cover the range */
		uint8_t bus_start, bus_end;
		uint32_t mmio32_base, mmio32_size;
		uint64_t mmio64_base, mmio64_size; /* size 0: no 64-bit window */
		uint16_t io_base;		   /* the I/O window for BARs besides 0xcf8-0xcff */
		uint32_t io_size;		   /* 0: none */
		/* The GSI of slot's INTx pin (0 = INTA); X86_ACPI_NO_GSI when not wired. */
		uint32_t (*intx_gsi)(unsigned int slot, unsigned int pin);
	} pci;

	struct {
		bool present;
		uint16_t port;
		uint32_t gsi;
	} uart;

	const struct x86_acpi_mmio_dev *mmio;
	unsigned int nr_mmio;

	struct {
		bool present; /* with it the DSDT has the power button \_SB.PWRB */
		enum x86_acpi_space space;
		uint64_t addr;
		uint32_t gsi;
	} ged;

	uint16_t pm_port; /* sleep control, sleep status, reset: see the top of this file */
};

/* The slot's INTA GSI as the MP table gives it (x86_pci_intx_gsi); the other pins unwired. */
uint32_t x86_acpi_default_intx_gsi(unsigned int slot, unsigned int pin);

/*
 * Lays the tables out in buf, which the guest sees at gpa (16-byte aligned): the RSDP first,
 * at gpa. Returns the bytes used, or 0 with err set (buffer too small, out of memory, a
 * description the tables cannot express).
 */
size_t x86_acpi_build(const struct x86_acpi_desc *d, uint8_t *buf, size_t size, uint64_t gpa,
		      struct kerr *err);

/* The same into guest memory at X86_ACPI_ADDR; *rsdp is the RSDP's guest-physical address. */
int x86_write_acpi(const struct guest_mem *gm, const struct x86_acpi_desc *d, uint64_t *rsdp,
		   struct kerr *err);

#endif
