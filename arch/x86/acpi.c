/*
 * The fixed-layout ACPI tables (RSDP, XSDT, FADT, MADT, MCFG) around the DSDT, laid out one
 * after another in a buffer the guest sees at a given address.
 */
#include "arch/x86/acpi.h"

#include <string.h>

#include "arch/x86/acpi_priv.h"
#include "arch/x86/cpu.h"
#include "arch/x86/checksum.h"
#include "arch/x86/layout.h"

#define OEM_ID "KESTRL"
#define OEM_TABLE_ID "KESTREL "
#define CREATOR_ID "KSTL"

struct acpi_rsdp {
	char signature[8]; /* "RSD PTR " */
	uint8_t checksum;  /* of the first 20 bytes (the ACPI 1.0 part) */
	char oem_id[6];
	uint8_t revision; /* 2: ACPI 2.0 and later */
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* of all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

/* Generic Address Structure. */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size; /* 1: byte */
	uint64_t address;
} __attribute__((packed));

/* FADT revision 6 (ACPI 6.x §5.2.9): 276 bytes. */
struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
	uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
	uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	char hypervisor_vendor_id[8];
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP layout");
_Static_assert(sizeof(struct acpi_header) == 36, "table header layout");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT layout");

#define FADT_WBINVD (1u << 0)
#define FADT_PWR_BUTTON (1u << 4) /* no fixed-feature power button */
#define FADT_SLP_BUTTON (1u << 5) /* no fixed-feature sleep button */
#define FADT_RESET_REG_SUP (1u << 10)
#define FADT_HW_REDUCED_ACPI (1u << 20)
#define BOOT_ARCH_8042 (1u << 1)
#define BOOT_ARCH_VGA_NOT_PRESENT (1u << 2)
#define GAS_ACCESS_BYTE 1

struct madt {
	struct acpi_header h;
	uint32_t lapic_address;
	uint32_t flags;
} __attribute__((packed));

enum {
	MADT_LAPIC = 0,
	MADT_IOAPIC = 1,
	MADT_ISO = 2,
	MADT_LAPIC_NMI = 4,
	MADT_X2APIC = 9,
	MADT_X2APIC_NMI = 10,
};

struct madt_lapic {
	uint8_t type, length;
	uint8_t processor_uid;
	uint8_t apic_id;
	uint32_t flags; /* bit 0: enabled */
} __attribute__((packed));

struct madt_x2apic {
	uint8_t type, length;
	uint16_t reserved;
	uint32_t x2apic_id;
	uint32_t flags;
	uint32_t processor_uid;
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type, length;
	uint8_t ioapic_id;
	uint8_t reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct madt_iso {
	uint8_t type, length;
	uint8_t bus; /* 0: ISA */
	uint8_t source_irq;
	uint32_t gsi;
	uint16_t flags; /* MPS INTI flags */
} __attribute__((packed));

struct madt_lapic_nmi {
	uint8_t type, length;
	uint8_t processor_uid; /* 0xff: all */
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

struct madt_x2apic_nmi {
	uint8_t type, length;
	uint16_t flags;
	uint32_t processor_uid; /* 0xffffffff: all */
	uint8_t lint;
	uint8_t reserved[3];
} __attribute__((packed));

#define MADT_ENABLED 1
#define LAPIC_NMI_LINT 1 /* LINT1 carries NMIs, as vcpu_setup programs it */
#define ISA_IRQS 16
/* MPS INTI flags: polarity in bits 0-1, trigger mode in bits 2-3. */
#define INTI_ACTIVE_HIGH 0x1
#define INTI_ACTIVE_LOW 0x3
#define INTI_EDGE 0x4
#define INTI_LEVEL 0xc
#define XAPIC_ID_MAX 254 /* 255 is the xAPIC broadcast id */

struct mcfg {
	struct acpi_header h;
	uint64_t reserved;
	uint64_t base; /* of the first entry (segment 0) */
	uint16_t segment;
	uint8_t bus_start, bus_end;
	uint32_t reserved1;
} __attribute__((packed));

#define ECAM_BUS_SIZE (1ULL << 20)

uint32_t x86_acpi_default_intx_gsi(unsigned int slot, unsigned int pin)
{
	return slot == 0 || pin != 0 ? X86_ACPI_NO_GSI : x86_pci_intx_gsi(slot);
}

/* Consecutive tables in the caller's buffer, each 16-byte aligned. */
struct layout {
	uint8_t *buf;
	size_t size, used;
	uint64_t gpa;
};

static void *place(struct layout *l, size_t len, uint64_t *gpa)
{
	size_t at = (l->used + 15) & ~(size_t)15;

	if (at > l->size || len > l->size - at)
		return NULL;
	l->used = at + len;
	*gpa = l->gpa + at;
	memset(l->buf + at, 0, len);
	return l->buf + at;
}

static void header(struct acpi_header *h, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, OEM_ID, 6);
	memcpy(h->oem_table_id, OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, CREATOR_ID, 4);
	h->creator_revision = 1;
}

static void seal(struct acpi_header *h)
{
	h->checksum = x86_table_checksum(h, h->length);
}

static struct acpi_gas io_byte(uint16_t port)
{
	return (struct acpi_gas){.space_id = AML_SYSTEM_IO,
				 .bit_width = 8,
				 .access_size = GAS_ACCESS_BYTE,
				 .address = port};
}

static void fadt(struct acpi_fadt *f, const struct x86_acpi_desc *d, uint64_t dsdt)
{
	header(&f->h, "FACP", sizeof(*f), 6);
	f->minor_version = 5;
	if (dsdt <= UINT32_MAX)
		f->dsdt = (uint32_t)dsdt;
	f->x_dsdt = dsdt;
	f->flags = FADT_WBINVD | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_RESET_REG_SUP |
		   FADT_HW_REDUCED_ACPI;
	f->iapc_boot_arch = BOOT_ARCH_8042 | BOOT_ARCH_VGA_NOT_PRESENT;
	f->reset_reg = io_byte((uint16_t)(d->pm_port + 2));
	f->reset_value = X86_ACPI_RESET_VALUE;
	f->sleep_control_reg = io_byte(d->pm_port);
	f->sleep_status_reg = io_byte((uint16_t)(d->pm_port + 1));
	memcpy(f->hypervisor_vendor_id, "KESTREL ", 8);
	seal(&f->h);
}

static uint32_t apic_id(const struct x86_acpi_desc *d, unsigned int i)
{
	return d->apic_ids ? d->apic_ids[i] : i;
}

/* Records a legacy IRQ's trigger/polarity; fails when two users disagree. */
static int legacy_irq(uint16_t iso[ISA_IRQS], uint32_t gsi, uint16_t flags, struct kerr *err)
{
	if (gsi >= ISA_IRQS)
		return 0; /* Linux takes GSIs >= 16 from _CRS/_PRT; an override names an ISA IRQ */
	if (iso[gsi] && iso[gsi] != flags)
		return kerr_set(err, "ACPI: GSI %u declared with two trigger modes", gsi);
	iso[gsi] = flags;
	return 0;
}

/*
 * Interrupt source overrides, for ISA IRQs that are not edge/active-high identity-mapped: the
 * timer (IRQ 0 on pin 2) and any legacy GSI a level-triggered device uses, so the MADT agrees
 * with the DSDT (PCI INTx: level, active low, as Linux assumes for a _PRT GSI).
 */
static int overrides(const struct x86_acpi_desc *d, uint16_t iso[ISA_IRQS], struct kerr *err)
{
	memset(iso, 0, ISA_IRQS * sizeof(*iso));
	for (unsigned int slot = 0; d->pci.present && slot < ACPI_PCI_SLOTS; slot++)
		for (unsigned int pin = 0; pin < 4; pin++) {
			uint32_t gsi = d->pci.intx_gsi(slot, pin);
			if (gsi != X86_ACPI_NO_GSI &&
			    legacy_irq(iso, gsi, INTI_LEVEL | INTI_ACTIVE_LOW, err))
				return -1;
		}
	for (unsigned int i = 0; i < d->nr_mmio; i++)
		if (d->mmio[i].level &&
		    legacy_irq(iso, d->mmio[i].gsi, INTI_LEVEL | INTI_ACTIVE_HIGH, err))
			return -1;
	if (iso[0] || iso[2])
		return kerr_set(err, "ACPI: GSI 0 and 2 belong to the timer");
	return 0;
}

static size_t madt_size(const struct x86_acpi_desc *d, const uint16_t iso[ISA_IRQS], bool *x2)
{
	size_t len = sizeof(struct madt) + sizeof(struct madt_ioapic) + sizeof(struct madt_iso) +
		     sizeof(struct madt_lapic_nmi);

	*x2 = false;
	for (unsigned int i = 0; i < d->nr_cpus; i++) {
		bool x = apic_id(d, i) > XAPIC_ID_MAX;
		len += x ? sizeof(struct madt_x2apic) : sizeof(struct madt_lapic);
		*x2 |= x;
	}
	for (unsigned int irq = 0; irq < ISA_IRQS; irq++)
		len += iso[irq] ? sizeof(struct madt_iso) : 0;
	return len + (*x2 ? sizeof(struct madt_x2apic_nmi) : 0);
}

static int madt_cpus(uint8_t **p, const struct x86_acpi_desc *d, struct kerr *err)
{
	for (unsigned int i = 0; i < d->nr_cpus; i++) {
		uint32_t id = apic_id(d, i);
		if (id > XAPIC_ID_MAX) {
			struct madt_x2apic *x = (struct madt_x2apic *)*p;
			*x = (struct madt_x2apic){.type = MADT_X2APIC,
						  .length = sizeof(*x),
						  .x2apic_id = id,
						  .flags = MADT_ENABLED,
						  .processor_uid = i};
			*p += sizeof(*x);
			continue;
		}
		if (i > UINT8_MAX)
			return kerr_set(err, "ACPI: vCPU %u has an xAPIC id but a UID over 255", i);
		struct madt_lapic *l = (struct madt_lapic *)*p;
		*l = (struct madt_lapic){.type = MADT_LAPIC,
					 .length = sizeof(*l),
					 .processor_uid = (uint8_t)i,
					 .apic_id = (uint8_t)id,
					 .flags = MADT_ENABLED};
		*p += sizeof(*l);
	}
	return 0;
}

static void madt_iso(uint8_t **p, uint8_t irq, uint32_t gsi, uint16_t flags)
{
	struct madt_iso *s = (struct madt_iso *)*p;

	*s = (struct madt_iso){
	    .type = MADT_ISO, .length = sizeof(*s), .source_irq = irq, .gsi = gsi, .flags = flags};
	*p += sizeof(*s);
}

static int madt(struct layout *l, const struct x86_acpi_desc *d, uint64_t *gpa, struct kerr *err)
{
	uint16_t iso[ISA_IRQS];
	bool x2;

	if (overrides(d, iso, err))
		return -1;
	size_t len = madt_size(d, iso, &x2);
	struct madt *m = place(l, len, gpa);
	if (!m)
		return kerr_set(err, "ACPI: no room for the MADT");
	header(&m->h, "APIC", (uint32_t)len, 5);
	m->lapic_address = (uint32_t)d->lapic_addr;

	uint8_t *p = (uint8_t *)(m + 1);
	if (madt_cpus(&p, d, err))
		return -1;
	struct madt_ioapic *io = (struct madt_ioapic *)p;
	*io = (struct madt_ioapic){.type = MADT_IOAPIC,
				   .length = sizeof(*io),
				   .ioapic_id = d->ioapic_id,
				   .address = (uint32_t)d->ioapic_addr};
	p += sizeof(*io);
	madt_iso(&p, 0, 2, 0); /* the PIT's IRQ 0 is IOAPIC pin 2, as on a PC; bus default flags */
	for (unsigned int irq = 0; irq < ISA_IRQS; irq++)
		if (iso[irq])
			madt_iso(&p, (uint8_t)irq, irq, iso[irq]);
	struct madt_lapic_nmi *nmi = (struct madt_lapic_nmi *)p;
	*nmi = (struct madt_lapic_nmi){.type = MADT_LAPIC_NMI,
				       .length = sizeof(*nmi),
				       .processor_uid = 0xff,
				       .lint = LAPIC_NMI_LINT};
	p += sizeof(*nmi);
	if (x2) {
		struct madt_x2apic_nmi *xn = (struct madt_x2apic_nmi *)p;
		*xn = (struct madt_x2apic_nmi){.type = MADT_X2APIC_NMI,
					       .length = sizeof(*xn),
					       .processor_uid = UINT32_MAX,
					       .lint = LAPIC_NMI_LINT};
	}
	seal(&m->h);
	return 0;
}

static int mcfg(struct layout *l, const struct x86_acpi_desc *d, uint64_t *gpa, struct kerr *err)
{
	struct mcfg *m = place(l, sizeof(*m), gpa);

	if (!m)
		return kerr_set(err, "ACPI: no room for the MCFG");
	header(&m->h, "MCFG", sizeof(*m), 1);
	m->base = d->pci.ecam_base;
	m->bus_start = d->pci.bus_start;
	m->bus_end = d->pci.bus_end;
	seal(&m->h);
	return 0;
}

static int dsdt(struct layout *l, const struct x86_acpi_desc *d, uint64_t *gpa, struct kerr *err)
{
	struct aml a;
	int ret = -1;

	aml_init(&a);
	if (x86_acpi_dsdt_aml(d, &a, err))
		goto out;
	struct acpi_header *h = place(l, sizeof(*h) + a.len, gpa);
	if (!h) {
		kerr_set(err, "ACPI: no room for the DSDT (%zu bytes)", a.len);
		goto out;
	}
	header(h, "DSDT", (uint32_t)(sizeof(*h) + a.len), 2); /* 2: 64-bit integers */
	memcpy(h + 1, a.buf, a.len);
	seal(h);
	ret = 0;
out:
	aml_free(&a);
	return ret;
}

static int check_desc(const struct x86_acpi_desc *d, struct kerr *err)
{
	if (d->nr_cpus == 0)
		return kerr_set(err, "ACPI: no vCPUs");
	if (d->lapic_addr > UINT32_MAX || d->ioapic_addr > UINT32_MAX)
		return kerr_set(err, "ACPI: APIC addresses must be below 4 GiB");
	if (!d->pci.present)
		return 0;
	if (d->pci.bus_end < d->pci.bus_start || !d->pci.intx_gsi || !d->pci.mmio32_size ||
	    d->pci.mmio32_base > UINT32_MAX - (d->pci.mmio32_size - 1))
		return kerr_set(err, "ACPI: bad PCI bus range, 32-bit window or INTx routing");
	if (d->pci.ecam_base + (d->pci.bus_end + 1) * ECAM_BUS_SIZE > (1ULL << 32))
		return kerr_set(err, "ACPI: the ECAM window must be below 4 GiB");
	if (d->pci.io_size && (uint32_t)d->pci.io_base + d->pci.io_size > 0x10000)
		return kerr_set(err, "ACPI: the PCI I/O window ends above port 0xffff");
	return 0;
}

size_t x86_acpi_build(const struct x86_acpi_desc *d, uint8_t *buf, size_t size, uint64_t gpa,
		      struct kerr *err)
{
	struct layout l = {.buf = buf, .size = size, .gpa = gpa};
	uint64_t rsdp_gpa, xsdt_gpa, tables[3], dsdt_gpa;
	unsigned int n = 0;

	if (gpa % 16)
		return kerr_set(err, "ACPI: tables must start 16-byte aligned"), 0;
	if (check_desc(d, err))
		return 0;
	struct acpi_rsdp *rsdp = place(&l, sizeof(*rsdp), &rsdp_gpa);
	size_t xsdt_len = sizeof(struct acpi_header) + 3 * sizeof(uint64_t);
	struct acpi_header *xsdt = place(&l, xsdt_len, &xsdt_gpa);
	if (!rsdp || !xsdt)
		return kerr_set(err, "ACPI: no room for the RSDP and XSDT"), 0;
	if (dsdt(&l, d, &dsdt_gpa, err))
		return 0;
	struct acpi_fadt *f = place(&l, sizeof(*f), &tables[n++]);
	if (!f)
		return kerr_set(err, "ACPI: no room for the FADT"), 0;
	fadt(f, d, dsdt_gpa);
	if (madt(&l, d, &tables[n++], err))
		return 0;
	if (d->pci.present && mcfg(&l, d, &tables[n++], err))
		return 0;

	/* Entries are 8-byte fields right after the 36-byte header: written unaligned. */
	xsdt_len = sizeof(*xsdt) + n * sizeof(uint64_t);
	header(xsdt, "XSDT", (uint32_t)xsdt_len, 1);
	memcpy(xsdt + 1, tables, n * sizeof(uint64_t));
	seal(xsdt);

	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, OEM_ID, 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt_address = xsdt_gpa;
	rsdp->checksum = x86_table_checksum(rsdp, 20);
	rsdp->extended_checksum = x86_table_checksum(rsdp, sizeof(*rsdp));
	return l.used;
}

int x86_write_acpi(const struct guest_mem *gm, const struct x86_acpi_desc *d, uint64_t *rsdp,
		   struct kerr *err)
{
	uint8_t *buf = guest_mem_ptr(gm, X86_ACPI_ADDR, X86_ACPI_SIZE);

	if (!buf)
		return kerr_set(err, "guest memory too small for the ACPI tables");
	if (!x86_acpi_build(d, buf, X86_ACPI_SIZE, X86_ACPI_ADDR, err))
		return -1;
	*rsdp = X86_ACPI_ADDR;
	return 0;
}
