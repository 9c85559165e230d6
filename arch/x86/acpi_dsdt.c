/*
 * The DSDT: the PCI host bridge with its windows and INTx routing, the UART, the virtio-mmio
 * devices, the processors, \_S5 and the power button behind a Generic Event Device.
 */
#include <stdio.h>

#include "arch/x86/acpi_priv.h"

#define PCI_CF8_PORT 0xcf8
#define PCI_CFG_PORTS 8 /* 0xcf8-0xcff: CONFIG_ADDRESS and CONFIG_DATA */
#define ECAM_BUS_SIZE (1ULL << 20)
#define UART_PORTS 8

/* "V01F": a letter and the index in three hex digits (callers keep it below 4096). */
static void indexed_name(char out[5], char letter, unsigned int i)
{
	snprintf(out, 5, "%c%03X", letter, i & 0xfffu);
}

static size_t name_crs_open(struct aml *a)
{
	aml_name_decl(a, "_CRS");
	return aml_restemplate_open(a);
}

static void pci_crs(struct aml *a, const struct x86_acpi_desc *d)
{
	size_t crs = name_crs_open(a);

	aml_word_bus_number(a, d->pci.bus_start, d->pci.bus_end);
	aml_io(a, PCI_CF8_PORT, PCI_CF8_PORT, 1, PCI_CFG_PORTS);
	if (d->pci.io_size)
		aml_dword_io(a, d->pci.io_base, d->pci.io_base + d->pci.io_size - 1);
	aml_dword_memory(a, AML_MEM_NONCACHEABLE, d->pci.mmio32_base,
			 d->pci.mmio32_base + d->pci.mmio32_size - 1);
	if (d->pci.mmio64_size)
		aml_qword_memory(a, AML_MEM_PREFETCHABLE, d->pci.mmio64_base,
				 d->pci.mmio64_base + d->pci.mmio64_size - 1);
	aml_restemplate_close(a, crs);
}

/* _PRT: {address (slot << 16 | 0xffff: any function), pin, 0 (no link device), GSI}. */
static int pci_prt(struct aml *a, const struct x86_acpi_desc *d, struct kerr *err)
{
	uint32_t gsi[ACPI_PCI_SLOTS][4];
	unsigned int n = 0;

	for (unsigned int slot = 0; slot < ACPI_PCI_SLOTS; slot++)
		for (unsigned int pin = 0; pin < 4; pin++) {
			gsi[slot][pin] = d->pci.intx_gsi(slot, pin);
			n += gsi[slot][pin] != X86_ACPI_NO_GSI;
		}
	if (n > UINT8_MAX)
		return kerr_set(err, "ACPI: %u PCI INTx routes do not fit one _PRT package", n);

	aml_name_decl(a, "_PRT");
	size_t prt = aml_package_open(a, (uint8_t)n);
	for (unsigned int slot = 0; slot < ACPI_PCI_SLOTS; slot++)
		for (unsigned int pin = 0; pin < 4; pin++) {
			if (gsi[slot][pin] == X86_ACPI_NO_GSI)
				continue;
			size_t e = aml_package_open(a, 4);
			aml_int(a, (uint64_t)slot << 16 | 0xffff);
			aml_int(a, pin);
			aml_int(a, 0);
			aml_int(a, gsi[slot][pin]);
			aml_close(a, e);
		}
	aml_close(a, prt);
	return 0;
}

static int pci_host_bridge(struct aml *a, const struct x86_acpi_desc *d, struct kerr *err)
{
	size_t dev = aml_device_open(a, "PCI0");

	aml_name_eisaid(a, "_HID", "PNP0A08"); /* PCI Express root bridge */
	aml_name_eisaid(a, "_CID", "PNP0A03"); /* ... compatible with PCI */
	aml_name_int(a, "_SEG", 0);
	aml_name_int(a, "_BBN", d->pci.bus_start);
	aml_name_int(a, "_UID", 0);
	pci_crs(a, d);
	if (pci_prt(a, d, err))
		return -1;
	aml_close(a, dev);

	/* Linux trusts the MCFG window only if a motherboard resource reserves it. */
	dev = aml_device_open(a, "MBRD");
	aml_name_eisaid(a, "_HID", "PNP0C02");
	aml_name_int(a, "_UID", 0);
	size_t crs = name_crs_open(a);
	aml_memory32_fixed(a, (uint32_t)(d->pci.ecam_base + d->pci.bus_start * ECAM_BUS_SIZE),
			   (uint32_t)((d->pci.bus_end - d->pci.bus_start + 1) * ECAM_BUS_SIZE),
			   true);
	aml_restemplate_close(a, crs);
	aml_close(a, dev);
	return 0;
}

static void uart(struct aml *a, const struct x86_acpi_desc *d)
{
	size_t dev = aml_device_open(a, "COM1");

	aml_name_eisaid(a, "_HID", "PNP0501"); /* 16550A-compatible */
	aml_name_int(a, "_UID", 0);
	size_t crs = name_crs_open(a);
	aml_io(a, d->uart.port, d->uart.port, 1, UART_PORTS);
	aml_interrupt(a, AML_IRQ_EDGE, d->uart.gsi);
	aml_restemplate_close(a, crs);
	aml_close(a, dev);
}

static void mmio_device(struct aml *a, unsigned int i, const struct x86_acpi_mmio_dev *m)
{
	char name[5];

	indexed_name(name, 'V', i);
	size_t dev = aml_device_open(a, name);
	aml_name_string(a, "_HID", "LNRO0005"); /* virtio-mmio */
	aml_name_int(a, "_UID", i);
	size_t crs = name_crs_open(a);
	aml_memory32_fixed(a, (uint32_t)m->base, m->size, true);
	aml_interrupt(a, m->level ? 0 : AML_IRQ_EDGE, m->gsi);
	aml_restemplate_close(a, crs);
	aml_close(a, dev);
}

/* Processor devices, whose _UID matches the MADT entry's processor UID. */
static void processors(struct aml *a, const struct x86_acpi_desc *d)
{
	char name[5];

	for (unsigned int i = 0; i < d->nr_cpus; i++) {
		indexed_name(name, 'C', i);
		size_t dev = aml_device_open(a, name);
		aml_name_string(a, "_HID", "ACPI0007");
		aml_name_int(a, "_UID", i);
		aml_close(a, dev);
	}
}

/*
 * Hardware-reduced ACPI has no fixed power button: a GED raises an interrupt, its _EVT reads
 * the event register (which clears it) and notifies the button device for each event bit set.
 */
static void power_button(struct aml *a, const struct x86_acpi_desc *d)
{
	size_t dev = aml_device_open(a, "PWRB");
	aml_name_eisaid(a, "_HID", "PNP0C0C");
	aml_name_int(a, "_UID", 0);
	aml_close(a, dev);

	dev = aml_device_open(a, "GED0");
	aml_name_string(a, "_HID", "ACPI0013");
	aml_name_int(a, "_UID", 0);
	size_t crs = name_crs_open(a);
	aml_interrupt(a, AML_IRQ_EDGE, d->ged.gsi);
	aml_restemplate_close(a, crs);
	aml_opregion(a, "EREG",
		     d->ged.space == X86_ACPI_SPACE_IO ? AML_SYSTEM_IO : AML_SYSTEM_MEMORY,
		     d->ged.addr, 4);
	size_t field = aml_field_open(a, "EREG", AML_FIELD_DWORD_ACC);
	aml_field_entry(a, "ESEL", 32);
	aml_close(a, field);

	size_t method = aml_method_open(a, "_EVT", AML_METHOD_ARGS(1) | AML_SERIALIZED);
	aml_store(a); /* Local0 = ESEL: one read per interrupt */
	aml_name(a, "ESEL");
	aml_local(a, 0);
	size_t cond = aml_if_open(a); /* If (Local0 & power button) */
	aml_and(a);
	aml_local(a, 0);
	aml_int(a, X86_ACPI_GED_EVT_POWER_BUTTON);
	aml_null_target(a);
	aml_notify(a); /* Notify (PWRB, 0x80): "status change", a button press */
	aml_name(a, "PWRB");
	aml_int(a, 0x80);
	aml_close(a, cond);
	aml_close(a, method);
	aml_close(a, dev);
}

/* \_S5: SLP_TYPa, SLP_TYPb, two reserved; the value written to SLEEP_CONTROL_REG's SLP_TYP. */
static void sleep_state_s5(struct aml *a)
{
	aml_name_decl(a, "\\_S5");
	size_t pkg = aml_package_open(a, 4);
	aml_int(a, X86_ACPI_S5_SLP_TYP);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_close(a, pkg);
}

int x86_acpi_dsdt_aml(const struct x86_acpi_desc *d, struct aml *a, struct kerr *err)
{
	if (d->nr_cpus > 0x1000 || d->nr_mmio > 0x1000)
		return kerr_set(err, "ACPI: more than 4096 vCPUs or virtio-mmio devices");
	for (unsigned int i = 0; i < d->nr_mmio; i++)
		if (d->mmio[i].base > UINT32_MAX - (d->mmio[i].size - 1) || !d->mmio[i].size)
			return kerr_set(err, "ACPI: virtio-mmio device %u is not below 4 GiB", i);

	size_t sb = aml_scope_open(a, "\\_SB");
	if (d->pci.present && pci_host_bridge(a, d, err))
		return -1;
	if (d->uart.present)
		uart(a, d);
	for (unsigned int i = 0; i < d->nr_mmio; i++)
		mmio_device(a, i, &d->mmio[i]);
	processors(a, d);
	if (d->ged.present)
		power_button(a, d);
	aml_close(a, sb);
	sleep_state_s5(a);
	if (!aml_ok(a))
		return kerr_set(err, "ACPI: out of memory building the DSDT");
	return 0;
}
