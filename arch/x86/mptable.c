/*
 * Intel MultiProcessor Specification 1.4 tables. Without ACPI, Linux finds the vCPUs, the
 * IOAPIC and the ISA interrupt wiring here.
 */
#include "arch/x86/cpu.h"

#include <string.h>

#include "arch/x86/checksum.h"
#include "arch/x86/layout.h"

struct mpf_intel {
	char signature[4]; /* "_MP_" */
	uint32_t physptr;
	uint8_t length; /* in 16-byte units */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature[5];
} __attribute__((packed));

struct mpc_table {
	char signature[4]; /* "PCMP" */
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint16_t extended_length;
	uint8_t extended_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));

enum { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };
#define CPU_ENABLED 1
#define CPU_BOOTPROCESSOR 2
#define APIC_VERSION 0x14
#define IOAPIC_VERSION 0x11
#define ISA_IRQS 16
#define MP_BUS_PCI 0 /* must equal the PCI bus number: Linux matches them */
#define MP_BUS_ISA 1
#define PCI_SLOTS 31 /* slots 1..31; slot 0 is the host bridge */
/* PCI INTx: level-triggered, active high (polarity 01, trigger 11). */
#define MP_IRQ_PCI_FLAGS 0x0d

int x86_write_mptable(const struct guest_mem *gm, unsigned int nr_cpus, struct kerr *err)
{
	size_t size = sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
		      nr_cpus * sizeof(struct mpc_cpu) + 2 * sizeof(struct mpc_bus) +
		      sizeof(struct mpc_ioapic) +
		      (ISA_IRQS + PCI_SLOTS + 2) * sizeof(struct mpc_intsrc);
	uint8_t *base = guest_mem_ptr(gm, X86_MPTABLE_ADDR, size);
	uint8_t ioapic_id = (uint8_t)nr_cpus;

	if (!base)
		return kerr_set(err, "guest memory too small for the MP table");
	if (size > X86_HIMEM_START - X86_MPTABLE_ADDR)
		return kerr_set(err, "MP table for %u vCPUs does not fit in the BIOS area",
				nr_cpus);
	memset(base, 0, size);

	struct mpf_intel *mpf = (struct mpf_intel *)base;
	struct mpc_table *mpc = (struct mpc_table *)(mpf + 1);
	uint8_t *p = (uint8_t *)(mpc + 1);

	for (unsigned int i = 0; i < nr_cpus; i++) {
		struct mpc_cpu *c = (struct mpc_cpu *)p;
		c->type = MP_PROCESSOR;
		c->apicid = (uint8_t)i;
		c->apicver = APIC_VERSION;
		c->cpuflag = CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0);
		c->cpufeature = 0x600;	/* family 6 */
		c->featureflag = 0x201; /* FPU, APIC */
		p += sizeof(*c);
	}

	struct mpc_bus *bus = (struct mpc_bus *)p;
	bus[0] = (struct mpc_bus){.type = MP_BUS, .busid = MP_BUS_PCI};
	memcpy(bus[0].bustype, "PCI   ", 6);
	bus[1] = (struct mpc_bus){.type = MP_BUS, .busid = MP_BUS_ISA};
	memcpy(bus[1].bustype, "ISA   ", 6);
	p += 2 * sizeof(*bus);

	struct mpc_ioapic *io = (struct mpc_ioapic *)p;
	io->type = MP_IOAPIC;
	io->apicid = ioapic_id;
	io->apicver = IOAPIC_VERSION;
	io->flags = 1;
	io->apicaddr = (uint32_t)X86_IOAPIC_ADDR;
	p += sizeof(*io);

	/* ISA IRQ n -> IOAPIC pin n, with the bus's default (edge, active high) polarity. */
	for (unsigned int irq = 0; irq < ISA_IRQS; irq++) {
		struct mpc_intsrc *s = (struct mpc_intsrc *)p;
		s->type = MP_INTSRC;
		s->irqtype = MP_INT;
		s->srcbus = MP_BUS_ISA;
		s->srcbusirq = (uint8_t)irq;
		s->dstapic = ioapic_id;
		s->dstirq = (uint8_t)irq;
		p += sizeof(*s);
	}
	/* Each slot's INTA: source "IRQ" is slot << 2 | pin, as the MP spec encodes PCI. */
	for (unsigned int slot = 1; slot <= PCI_SLOTS; slot++) {
		struct mpc_intsrc *s = (struct mpc_intsrc *)p;
		s->type = MP_INTSRC;
		s->irqtype = MP_INT;
		s->irqflag = MP_IRQ_PCI_FLAGS;
		s->srcbus = MP_BUS_PCI;
		s->srcbusirq = (uint8_t)(slot << 2);
		s->dstapic = ioapic_id;
		s->dstirq = (uint8_t)x86_pci_intx_gsi(slot);
		p += sizeof(*s);
	}
	struct mpc_intsrc *lint = (struct mpc_intsrc *)p;
	lint[0] = (struct mpc_intsrc){
	    .type = MP_LINTSRC, .irqtype = MP_EXTINT, .dstapic = 0xff, .dstirq = 0};
	lint[1] = (struct mpc_intsrc){
	    .type = MP_LINTSRC, .irqtype = MP_NMI, .dstapic = 0xff, .dstirq = 1};
	p += 2 * sizeof(*lint);

	memcpy(mpc->signature, "PCMP", 4);
	mpc->length = (uint16_t)(p - (uint8_t *)mpc);
	mpc->oemcount = (uint16_t)(nr_cpus + 2 + 1 + ISA_IRQS + PCI_SLOTS + 2); /* entry count */
	mpc->spec = 4;
	memcpy(mpc->oem, "KESTREL ", 8);
	memcpy(mpc->productid, "KESTREL VM  ", 12);
	mpc->lapic = (uint32_t)X86_LAPIC_ADDR;
	mpc->checksum = x86_table_checksum(mpc, mpc->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = (uint32_t)(X86_MPTABLE_ADDR + sizeof(*mpf));
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = x86_table_checksum(mpf, sizeof(*mpf));
	return 0;
}
