/*
 * The ACPI tables as a guest reads them: RSDP → XSDT → each table, checksums and lengths, the
 * fields Linux relies on, and (when acpica-tools is installed) iasl's disassembly of each.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/acpi.h"
#include "arch/x86/cpu.h"
#include "arch/x86/layout.h"

#define BASE X86_ACPI_ADDR
#define SIZE X86_ACPI_SIZE

static uint8_t buf[SIZE];

static const struct x86_acpi_mmio_dev mmio_devs[] = {
    {.base = 0xd0000000, .size = 0x1000, .gsi = 5, .level = false},
    {.base = 0xd0001000, .size = 0x1000, .gsi = 24, .level = true},
    {.base = 0xd0002000, .size = 0x1000, .gsi = 10, .level = true},
};

static struct x86_acpi_desc desc(unsigned int nr_cpus)
{
	return (struct x86_acpi_desc){
	    .nr_cpus = nr_cpus,
	    .lapic_addr = X86_LAPIC_ADDR,
	    .ioapic_addr = X86_IOAPIC_ADDR,
	    .ioapic_id = (uint8_t)nr_cpus,
	    .pci = {.present = true,
		    .ecam_base = X86_PCI_ECAM_BASE,
		    .bus_start = 0,
		    .bus_end = 0,
		    .mmio32_base = 0xc0000000,
		    .mmio32_size = 0x20000000,
		    .io_base = 0x1000,
		    .io_size = 0xf000,
		    .intx_gsi = x86_acpi_default_intx_gsi},
	    .uart = {.present = true, .port = 0x3f8, .gsi = 4},
	    .mmio = mmio_devs,
	    .nr_mmio = 3,
	    .ged = {.present = true,
		    .space = X86_ACPI_SPACE_IO,
		    .addr = X86_ACPI_GED_PORT,
		    .gsi = 9},
	    .pm_port = X86_ACPI_PM_PORT,
	};
}

static size_t build(const struct x86_acpi_desc *d)
{
	struct kerr err = {{0}};

	memset(buf, 0xcc, sizeof(buf)); /* stale bytes would show in checksums */
	size_t used = x86_acpi_build(d, buf, sizeof(buf), BASE, &err);
	cr_assert_gt(used, 0, "%s", err.msg);
	cr_assert_leq(used, sizeof(buf));
	return used;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* The table at gpa, checked: inside the buffer, its length, its checksum, its signature. */
static const uint8_t *table_at(uint64_t gpa, const char *sig)
{
	cr_assert_geq(gpa, BASE);
	cr_assert_lt(gpa + 36, BASE + SIZE);
	const uint8_t *t = buf + (gpa - BASE);
	uint32_t len = rd32(t + 4);
	cr_assert_leq(gpa + len, BASE + SIZE, "%.4s runs past the buffer", t);
	cr_assert_eq(memcmp(t, sig, 4), 0, "want %s, found %.4s", sig, t);
	cr_assert_eq(sum(t, len), 0, "%s checksum", sig);
	return t;
}

static const uint8_t *xsdt(void)
{
	const uint8_t *rsdp = buf;

	cr_assert_eq(memcmp(rsdp, "RSD PTR ", 8), 0);
	cr_assert_eq(sum(rsdp, 20), 0, "RSDP 1.0 checksum");
	cr_assert_eq(sum(rsdp, 36), 0, "RSDP extended checksum");
	cr_assert_eq(rsdp[15], 2, "revision");
	cr_assert_eq(rd32(rsdp + 20), 36, "length");
	return table_at(rd64(rsdp + 24), "XSDT");
}

/* The table the XSDT lists with signature sig, or NULL. */
static const uint8_t *find(const char *sig)
{
	const uint8_t *x = xsdt();
	uint32_t n = (rd32(x + 4) - 36) / 8;

	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *t = buf + (rd64(x + 36 + 8 * i) - BASE);
		if (memcmp(t, sig, 4) == 0)
			return table_at(rd64(x + 36 + 8 * i), sig);
	}
	return NULL;
}

Test(acpi, every_table_reachable_with_its_checksum)
{
	struct x86_acpi_desc d = desc(4);

	build(&d);
	const uint8_t *x = xsdt();
	cr_assert_eq(rd32(x + 4), 36 + 3 * 8, "XSDT lists FADT, MADT, MCFG");
	cr_assert_eq(x[8], 1, "XSDT revision");
	cr_assert_not_null(find("FACP"));
	cr_assert_not_null(find("APIC"));
	cr_assert_not_null(find("MCFG"));
	cr_assert_eq(rd64(x + 36) % 8, 0);
}

Test(acpi, fadt_hardware_reduced_with_sleep_and_reset)
{
	struct x86_acpi_desc d = desc(1);

	build(&d);
	const uint8_t *f = find("FACP");
	cr_assert_eq(rd32(f + 4), 276, "FADT length");
	cr_assert_eq(f[8], 6, "FADT revision");
	uint32_t flags = rd32(f + 112);
	cr_assert(flags & (1u << 20), "HW_REDUCED_ACPI");
	cr_assert(flags & (1u << 10), "RESET_REG_SUP");
	cr_assert_eq(rd32(f + 48), 0, "no SMI command port");
	/* RESET_REG: SystemIO, 8 bits at pm_port + 2, and its value. */
	cr_assert_eq(f[116], 1);
	cr_assert_eq(f[117], 8);
	cr_assert_eq(rd64(f + 120), X86_ACPI_PM_PORT + 2);
	cr_assert_eq(f[128], X86_ACPI_RESET_VALUE);
	/* SLEEP_CONTROL_REG and SLEEP_STATUS_REG. */
	cr_assert_eq(f[244], 1);
	cr_assert_eq(f[245], 8);
	cr_assert_eq(rd64(f + 248), X86_ACPI_PM_PORT);
	cr_assert_eq(f[256], 1);
	cr_assert_eq(rd64(f + 260), X86_ACPI_PM_PORT + 1);
	/* X_DSDT and DSDT agree and point at a valid DSDT. */
	uint64_t dsdt = rd64(f + 140);
	cr_assert_eq(rd32(f + 40), dsdt);
	const uint8_t *t = table_at(dsdt, "DSDT");
	cr_assert_eq(t[8], 2, "DSDT revision 2: 64-bit integers");
}

/* MADT entries of type; ids[] gets their APIC ids. */
static unsigned int madt_entries(const uint8_t *m, uint8_t type, uint32_t *ids)
{
	uint32_t len = rd32(m + 4);
	unsigned int n = 0;

	for (uint32_t off = 44; off < len; off += m[off + 1]) {
		cr_assert_geq(m[off + 1], 2, "MADT entry of length %u", m[off + 1]);
		if (m[off] != type)
			continue;
		if (ids && type == 0) {
			cr_assert_eq(m[off + 1], 8);
			cr_assert_eq(rd32(m + off + 4) & 1, 1, "enabled");
			ids[n] = m[off + 3];
		} else if (ids && type == 9) {
			cr_assert_eq(m[off + 1], 16);
			ids[n] = rd32(m + off + 4);
		}
		n++;
	}
	return n;
}

Test(acpi, madt_one_lapic_per_vcpu)
{
	for (unsigned int cpus = 1; cpus <= 8; cpus *= 2) {
		struct x86_acpi_desc d = desc(cpus);
		uint32_t ids[8];

		build(&d);
		const uint8_t *m = find("APIC");
		cr_assert_eq(rd32(m + 36), X86_LAPIC_ADDR);
		cr_assert_eq(madt_entries(m, 0, ids), cpus);
		for (unsigned int i = 0; i < cpus; i++)
			cr_assert_eq(ids[i], i);
		cr_assert_eq(madt_entries(m, 9, NULL), 0, "no x2APIC entries");
		cr_assert_eq(madt_entries(m, 1, NULL), 1, "one IOAPIC");
	}
}

Test(acpi, madt_x2apic_above_254)
{
	uint32_t apic_ids[] = {0, 1, 254, 255, 300};
	struct x86_acpi_desc d = desc(5);
	uint32_t ids[5];

	d.apic_ids = apic_ids;
	build(&d);
	const uint8_t *m = find("APIC");
	cr_assert_eq(madt_entries(m, 0, ids), 3);
	cr_assert_eq(ids[2], 254);
	cr_assert_eq(madt_entries(m, 9, ids), 2);
	cr_assert_eq(ids[0], 255);
	cr_assert_eq(ids[1], 300);
	cr_assert_eq(madt_entries(m, 10, NULL), 1, "x2APIC NMI");
}

Test(acpi, madt_ioapic_and_overrides)
{
	struct x86_acpi_desc d = desc(2);

	build(&d);
	const uint8_t *m = find("APIC");
	uint32_t len = rd32(m + 4);
	int isos = 0;
	bool timer = false, level10 = false;

	for (uint32_t off = 44; off < len; off += m[off + 1]) {
		const uint8_t *e = m + off;
		if (e[0] == 1) {
			cr_assert_eq(e[2], 2, "IOAPIC id");
			cr_assert_eq(rd32(e + 4), X86_IOAPIC_ADDR);
			cr_assert_eq(rd32(e + 8), 0, "GSI base");
		}
		if (e[0] != 2)
			continue;
		isos++;
		cr_assert_eq(e[2], 0, "ISA bus");
		uint16_t flags = (uint16_t)(e[8] | e[9] << 8);
		if (e[3] == 0) {
			timer = rd32(e + 4) == 2 && flags == 0;
		} else {
			/* The level-triggered virtio-mmio device on legacy GSI 10. */
			cr_assert_eq(e[3], 10);
			cr_assert_eq(rd32(e + 4), 10);
			level10 = flags == 0x0d;
		}
	}
	cr_assert(timer, "IRQ 0 -> GSI 2");
	cr_assert(level10, "GSI 10 level, active high");
	cr_assert_eq(isos, 2, "GSIs >= 16 (PCI INTx, GSI 24) need no override");
	cr_assert_eq(madt_entries(m, 4, NULL), 1, "LINT1 NMI");
}

static uint32_t pci_intx_on_legacy(unsigned int slot, unsigned int pin)
{
	return slot == 3 && pin == 0 ? 11 : X86_ACPI_NO_GSI;
}

Test(acpi, pci_intx_on_a_legacy_gsi_is_level_active_low)
{
	struct x86_acpi_desc d = desc(1);

	d.pci.intx_gsi = pci_intx_on_legacy;
	build(&d);
	const uint8_t *m = find("APIC");
	uint32_t len = rd32(m + 4);
	bool found = false;

	for (uint32_t off = 44; off < len; off += m[off + 1])
		if (m[off] == 2 && m[off + 3] == 11)
			found = (m[off + 8] | m[off + 9] << 8) == 0x0f;
	cr_assert(found);
}

Test(acpi, conflicting_triggers_rejected)
{
	struct x86_acpi_desc d = desc(1);
	struct kerr err = {{0}};

	d.pci.intx_gsi = pci_intx_on_legacy;
	struct x86_acpi_mmio_dev m = {.base = 0xd0000000, .size = 0x1000, .gsi = 11, .level = true};
	d.mmio = &m;
	d.nr_mmio = 1;
	cr_assert_eq(x86_acpi_build(&d, buf, sizeof(buf), BASE, &err), 0);
	cr_assert(strstr(err.msg, "GSI 11"), "%s", err.msg);
}

Test(acpi, mcfg_ecam_window)
{
	struct x86_acpi_desc d = desc(1);

	build(&d);
	const uint8_t *m = find("MCFG");
	cr_assert_eq(rd32(m + 4), 60);
	cr_assert_eq(rd64(m + 44), X86_PCI_ECAM_BASE);
	cr_assert_eq(m[52] | m[53] << 8, 0, "segment");
	cr_assert_eq(m[54], 0, "start bus");
	cr_assert_eq(m[55], 0, "end bus");
}

Test(acpi, no_pci_no_mcfg)
{
	struct x86_acpi_desc d = desc(1);

	d.pci.present = false;
	build(&d);
	cr_assert_eq(rd32(xsdt() + 4), 36 + 2 * 8);
	cr_assert_null(find("MCFG"));
	cr_assert_not_null(find("APIC"));
}

static bool contains(const uint8_t *p, size_t n, const char *s)
{
	return memmem(p, n, s, strlen(s)) != NULL;
}

Test(acpi, dsdt_names)
{
	struct x86_acpi_desc d = desc(2);

	build(&d);
	const uint8_t *f = find("FACP");
	const uint8_t *t = table_at(rd64(f + 140), "DSDT");
	size_t n = rd32(t + 4);
	const char *names[] = {"LNRO0005", "ACPI0013", "ACPI0007", "_PRT", "_S5_", "_CRS", "PCI0",
			       "COM1",	   "PWRB",     "GED0",	   "_EVT", "V000", "V002", "C001"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_assert(contains(t, n, names[i]), "%s missing", names[i]);
	cr_assert_not(contains(t, n, "V003"));
	cr_assert_not(contains(t, n, "C002"));
}

Test(acpi, errors)
{
	struct x86_acpi_desc d = desc(1);
	struct kerr err = {{0}};

	cr_assert_eq(x86_acpi_build(&d, buf, 200, BASE, &err), 0, "buffer too small");
	cr_assert(strstr(err.msg, "no room"), "%s", err.msg);
	cr_assert_eq(x86_acpi_build(&d, buf, sizeof(buf), BASE + 8, &err), 0, "unaligned");
	d.nr_cpus = 0;
	cr_assert_eq(x86_acpi_build(&d, buf, sizeof(buf), BASE, &err), 0, "no vCPUs");
	d = desc(1);
	struct x86_acpi_mmio_dev high = {.base = 0x100000000ULL, .size = 0x1000, .gsi = 5};
	d.mmio = &high;
	d.nr_mmio = 1;
	cr_assert_eq(x86_acpi_build(&d, buf, sizeof(buf), BASE, &err), 0, "mmio above 4 GiB");
	d = desc(1);
	d.pci.ecam_base = 0xf8000000;
	d.pci.bus_end = 255;
	cr_assert_eq(x86_acpi_build(&d, buf, sizeof(buf), BASE, &err), 0,
		     "ECAM for 256 buses crosses 4 GiB");
}

Test(acpi, many_vcpus_fit_the_area)
{
	struct x86_acpi_desc d = desc(288);
	uint32_t apic_ids[288];

	for (unsigned int i = 0; i < 288; i++)
		apic_ids[i] = i < 254 ? i : i + 10;
	d.apic_ids = apic_ids;
	build(&d);
	const uint8_t *m = find("APIC");
	cr_assert_eq(madt_entries(m, 0, NULL) + madt_entries(m, 9, NULL), 288);
}

/* iasl -d on each table: it must disassemble cleanly. */
static char *run_iasl(const char *dir, const char *file, const void *t, size_t len)
{
	char path[512], cmd[1200], *dsl = NULL;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/%s.dat", dir, file);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(t, 1, len, f), len);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s.dat >%s.log 2>&1", dir, file, file);
	int rc = system(cmd);
	snprintf(path, sizeof(path), "%s/%s.log", dir, file);
	if (rc != 0) {
		char log[4096] = "";
		FILE *l = fopen(path, "r");
		if (l) {
			log[fread(log, 1, sizeof(log) - 1, l)] = 0;
			fclose(l);
		}
		cr_assert_fail("iasl -d %s failed (%d):\n%s", file, rc, log);
	}
	snprintf(path, sizeof(path), "%s/%s.dsl", dir, file);
	f = fopen(path, "r");
	cr_assert_not_null(f, "no %s", path);
	cr_assert_eq(getdelim(&dsl, &n, '\0', f) > 0, true);
	fclose(f);
	return dsl;
}

Test(acpi, iasl_disassembles_every_table)
{
	if (system("command -v iasl >/dev/null 2>&1") != 0)
		cr_skip_test("iasl (acpica-tools) not installed");

	char dir[] = "/tmp/kestrel-acpi-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	struct x86_acpi_desc d = desc(4);
	build(&d);
	const char *sigs[] = {"FACP", "APIC", "MCFG"};
	for (size_t i = 0; i < 3; i++) {
		const uint8_t *t = find(sigs[i]);
		char *dsl = run_iasl(dir, sigs[i], t, rd32(t + 4));
		cr_assert(strstr(dsl, "Invalid") == NULL, "%s:\n%s", sigs[i], dsl);
		free(dsl);
	}
	const uint8_t *f = find("FACP");
	const uint8_t *t = table_at(rd64(f + 140), "DSDT");
	char *dsl = run_iasl(dir, "DSDT", t, rd32(t + 4));
	const char *want[] = {
	    "LNRO0005",	    "_PRT", "_S5_", "ACPI0013", "PNP0A08", "PNP0501", "Notify (PWRB, 0x80)",
	    "Memory32Fixed"};
	for (size_t i = 0; i < 8; i++)
		cr_assert(strstr(dsl, want[i]), "%s not in the disassembly:\n%s", want[i], dsl);
	free(dsl);

	/* The disassembly compiles back without errors or warnings. */
	char cmd[600];
	snprintf(cmd, sizeof(cmd),
		 "cd %s && iasl -p re DSDT.dsl 2>&1 | grep -q '0 Errors, 0 Warnings'", dir);
	cr_assert_eq(system(cmd), 0, "iasl -p DSDT.dsl: errors or warnings (see %s)", dir);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
