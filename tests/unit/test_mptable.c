/* The Intel MP table, checked the way Linux's mpparse reads it. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/cpu.h"
#include "vmm/guest_mem.h"

#define MiB (1ULL << 20)

static struct guest_mem gm;

static void setup(void)
{
	struct guest_mem_region layout[2];
	struct kerr err = {{0}};
	int n = x86_ram_layout(64 * MiB, layout);

	cr_assert_gt(n, 0);
	cr_assert_eq(guest_mem_map(&gm, layout, n, &err), 0, "%s", err.msg);
	/* Dirty the BIOS area so stale bytes would show. */
	memset(guest_mem_ptr(&gm, 0xf0000, 0x10000), 0xcc, 0x10000);
}

static void teardown(void)
{
	guest_mem_unmap(&gm);
}

TestSuite(mptable, .init = setup, .fini = teardown);

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_mptable(unsigned int cpus)
{
	struct kerr err = {{0}};

	cr_assert_eq(x86_write_mptable(&gm, cpus, &err), 0, "%u cpus: %s", cpus, err.msg);

	/* Floating pointer structure: 16 bytes at 0xf0000. */
	const uint8_t *mpf = guest_mem_ptr(&gm, X86_MPTABLE_ADDR, 16);
	cr_assert_not_null(mpf);
	cr_assert_eq(memcmp(mpf, "_MP_", 4), 0, "no _MP_ signature");
	cr_assert_eq(mpf[8], 1, "length in 16-byte units");
	cr_assert(mpf[9] == 1 || mpf[9] == 4, "spec revision %u", mpf[9]);
	cr_assert_eq(sum(mpf, 16), 0, "floating pointer checksum");
	cr_assert_eq(mpf[11], 0, "feature byte 1 must be 0: a configuration table follows");
	uint32_t physptr = le32(mpf + 4);
	cr_assert_neq(physptr, 0);
	cr_assert_geq(physptr, 0xf0000);
	cr_assert_lt(physptr, 0x100000);

	/* Configuration table header. */
	const uint8_t *mpc = guest_mem_ptr(&gm, physptr, 44);
	cr_assert_not_null(mpc);
	cr_assert_eq(memcmp(mpc, "PCMP", 4), 0, "no PCMP signature");
	uint16_t len = le16(mpc + 4);
	cr_assert_geq(len, 44);
	mpc = guest_mem_ptr(&gm, physptr, len);
	cr_assert_not_null(mpc);
	cr_assert_eq(sum(mpc, len), 0, "PCMP checksum");
	cr_assert(mpc[6] == 1 || mpc[6] == 4, "spec revision %u", mpc[6]);
	cr_assert_eq(le32(mpc + 36), 0xfee00000, "LAPIC address");
	uint16_t count = le16(mpc + 34);

	/* Walk the entries as Linux does: sizes by type. */
	unsigned int nr_cpu = 0, nr_bus = 0, nr_ioapic = 0, nr_intsrc = 0, nr_lint = 0;
	unsigned int seen_irq = 0, seen_slot = 0, nr_pci_intsrc = 0;
	int ioapic_id = -1;
	const uint8_t *p = mpc + 44, *end = mpc + len;
	unsigned int entries = 0;

	while (p < end) {
		entries++;
		switch (p[0]) {
		case 0: /* processor */
			cr_assert_leq(p + 20, end);
			cr_assert_eq(p[1], nr_cpu, "apic id of cpu %u is %u", nr_cpu, p[1]);
			cr_assert_eq(p[3] & 1, 1, "cpu %u not enabled", nr_cpu);
			cr_assert_eq(!!(p[3] & 2), nr_cpu == 0, "BSP flag wrong on cpu %u", nr_cpu);
			cr_assert_neq(p[2], 0, "apic version");
			nr_cpu++;
			p += 20;
			break;
		case 1: /* bus */
			cr_assert_leq(p + 8, end);
			/* The PCI bus id must equal the PCI bus number (0); ISA is bus 1. */
			if (p[1] == 0)
				cr_assert_eq(memcmp(p + 2, "PCI   ", 6), 0);
			else
				cr_assert(p[1] == 1 && !memcmp(p + 2, "ISA   ", 6), "bus %u", p[1]);
			nr_bus++;
			p += 8;
			break;
		case 2: /* IOAPIC */
			cr_assert_leq(p + 8, end);
			ioapic_id = p[1];
			cr_assert_eq(p[3] & 1, 1, "IOAPIC not usable");
			cr_assert_eq(le32(p + 4), 0xfec00000);
			nr_ioapic++;
			p += 8;
			break;
		case 3: /* I/O interrupt */
			cr_assert_leq(p + 8, end);
			cr_assert_eq(p[1], 0, "INT type");
			cr_assert_eq(p[6], ioapic_id, "destination is not the IOAPIC");
			if (p[4] == 0) {
				/* PCI: slot << 2 | INTA, level/active-high, to pin 16 + slot % 8.
				 */
				unsigned int slot = p[5] >> 2;
				cr_assert_eq(p[5] & 3, 0, "PCI pin");
				cr_assert(slot >= 1 && slot <= 31, "PCI slot %u", slot);
				cr_assert_eq(le16(p + 2), 0x0d, "PCI irq flags");
				cr_assert_eq(p[7], 16 + slot % 8, "slot %u to pin %u", slot, p[7]);
				cr_assert_eq(seen_slot & (1u << slot), 0, "slot %u twice", slot);
				seen_slot |= 1u << slot;
				nr_pci_intsrc++;
				p += 8;
				break;
			}
			cr_assert_eq(p[4], 1, "source bus");
			cr_assert_eq(p[5], p[7], "irq %u routed to pin %u", p[5], p[7]);
			cr_assert_lt(p[5], 16);
			cr_assert_eq(seen_irq & (1u << p[5]), 0, "irq %u twice", p[5]);
			seen_irq |= 1u << p[5];
			cr_assert_eq(p[6], ioapic_id, "destination is not the IOAPIC");
			nr_intsrc++;
			p += 8;
			break;
		case 4: /* local interrupt */
			cr_assert_leq(p + 8, end);
			nr_lint++;
			p += 8;
			break;
		default:
			cr_assert_fail("unknown entry type %u at offset %td", p[0], p - mpc);
		}
	}
	cr_assert_eq(p, end, "entries overrun the table");
	cr_assert_eq(entries, count, "entry count %u, header says %u", entries, count);
	cr_assert_eq(nr_cpu, cpus);
	cr_assert_eq(nr_bus, 2);
	cr_assert_eq(nr_pci_intsrc, 31);
	cr_assert_eq(seen_slot, 0xfffffffe);
	cr_assert_eq(nr_ioapic, 1);
	cr_assert_eq(ioapic_id, (int)cpus, "IOAPIC id %d", ioapic_id);
	cr_assert_eq(nr_intsrc, 16);
	cr_assert_eq(seen_irq, 0xffff);
	cr_assert_eq(nr_lint, 2);
}

Test(mptable, one_cpu)
{
	check_mptable(1);
}

Test(mptable, two_cpus)
{
	check_mptable(2);
}

Test(mptable, sixty_four_cpus)
{
	check_mptable(64);
}

Test(mptable, max_cpus)
{
	check_mptable(254);
}

Test(mptable, rewrite_with_fewer_cpus)
{
	check_mptable(64);
	check_mptable(2);
}

Test(mptable, ram_too_small)
{
	struct guest_mem small;
	struct guest_mem_region layout[1] = {{.gpa = 0, .size = 0xf0000}};
	struct kerr err = {{0}};

	cr_assert_eq(guest_mem_map(&small, layout, 1, &err), 0, "%s", err.msg);
	cr_assert_eq(x86_write_mptable(&small, 1, &err), -1);
	cr_assert_neq(err.msg[0], '\0');
	cr_assert_null(strchr(err.msg, '\n'));
	guest_mem_unmap(&small);
}
