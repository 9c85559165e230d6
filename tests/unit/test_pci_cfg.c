/* PCI config space of one function: header fields, BAR sizing, capabilities, hooks, INTx. */
#include <criterion/criterion.h>
#include <linux/pci_regs.h>
#include <stdint.h>
#include <string.h>

#include "devices/pci.h"
#include "fixture_pci.h"

static struct pci_function fn;

struct remap_log {
	int calls;
	int bar;
	uint64_t old_addr, new_addr;
};
static struct remap_log remap;

static void record_remap(void *opaque, struct pci_function *f, int bar, uint64_t old_addr,
			 uint64_t new_addr)
{
	struct remap_log *l = opaque;

	cr_assert_eq(f, &fn);
	l->calls++;
	l->bar = bar;
	l->old_addr = old_addr;
	l->new_addr = new_addr;
}

static void setup(void)
{
	pci_function_init(&fn, &test_ids, "test");
	memset(&remap, 0, sizeof(remap));
	fn.bar_remap = record_remap;
	fn.bar_remap_opaque = &remap;
}

static void teardown(void)
{
	pci_function_destroy(&fn);
}

static uint32_t rd(unsigned int off, unsigned int size)
{
	return pci_cfg_read_val(&fn, off, size);
}

static void wr(unsigned int off, unsigned int size, uint32_t val)
{
	pci_cfg_write_val(&fn, off, size, val);
}

TestSuite(pci_cfg, .init = setup, .fini = teardown);

Test(pci_cfg, header_ids_every_width)
{
	cr_assert_eq(rd(PCI_VENDOR_ID, 2), 0x1af4);
	cr_assert_eq(rd(PCI_DEVICE_ID, 2), 0x1041);
	cr_assert_eq(rd(0, 4), 0x10411af4);
	cr_assert_eq(rd(0, 1), 0xf4);
	cr_assert_eq(rd(1, 1), 0x1a);
	cr_assert_eq(rd(3, 1), 0x10);
	cr_assert_eq(rd(PCI_CLASS_REVISION, 4), 0x02000001);
	cr_assert_eq(rd(PCI_CLASS_DEVICE, 2), 0x0200);
	cr_assert_eq(rd(PCI_REVISION_ID, 1), 0x01);
	cr_assert_eq(rd(PCI_SUBSYSTEM_VENDOR_ID, 4), 0x00011af4);
	cr_assert_eq(rd(PCI_HEADER_TYPE, 1), PCI_HEADER_TYPE_NORMAL);
	cr_assert_eq(rd(PCI_INTERRUPT_PIN, 1), 1);
}

Test(pci_cfg, unaligned_reads)
{
	cr_assert_eq(rd(1, 2), 0x411a);
	cr_assert_eq(rd(1, 4), 0x0010411a); /* device id, then command low byte (0) */
	cr_assert_eq(rd(3, 2), 0x0010);
	cr_assert_eq(rd(PCI_CLASS_PROG, 4), 0x00020000); /* prog-if, sub, base, cache line */
}

Test(pci_cfg, read_only_fields_ignore_writes)
{
	wr(0, 4, 0xffffffff);
	wr(PCI_CLASS_REVISION, 4, 0xffffffff);
	wr(PCI_SUBSYSTEM_VENDOR_ID, 4, 0);
	wr(PCI_HEADER_TYPE, 1, 0x80);
	wr(PCI_INTERRUPT_PIN, 1, 4);
	wr(PCI_CAPABILITY_LIST, 1, 0x40);
	wr(PCI_ROM_ADDRESS, 4, 0xffffffff);
	cr_assert_eq(rd(0, 4), 0x10411af4);
	cr_assert_eq(rd(PCI_CLASS_REVISION, 4), 0x02000001);
	cr_assert_eq(rd(PCI_SUBSYSTEM_VENDOR_ID, 4), 0x00011af4);
	cr_assert_eq(rd(PCI_HEADER_TYPE, 1), 0);
	cr_assert_eq(rd(PCI_INTERRUPT_PIN, 1), 1);
	cr_assert_eq(rd(PCI_CAPABILITY_LIST, 1), 0);
	cr_assert_eq(rd(PCI_ROM_ADDRESS, 4), 0);
	/* No BAR declared: BAR registers are hardwired to zero. */
	wr(PCI_BASE_ADDRESS_2, 4, 0xffffffff);
	cr_assert_eq(rd(PCI_BASE_ADDRESS_2, 4), 0);
}

Test(pci_cfg, writable_fields_and_unaligned_writes)
{
	wr(PCI_INTERRUPT_LINE, 1, 11);
	cr_assert_eq(rd(PCI_INTERRUPT_LINE, 1), 11);
	/* A dword write spanning line (RW) and pin (RO). */
	wr(PCI_INTERRUPT_LINE, 4, 0xffff0405);
	cr_assert_eq(rd(PCI_INTERRUPT_LINE, 2), 0x0105);
	/* Unaligned 2-byte write over cache line size and latency timer. */
	wr(PCI_CACHE_LINE_SIZE, 2, 0x4010);
	cr_assert_eq(rd(PCI_CACHE_LINE_SIZE, 1), 0x10);
	cr_assert_eq(rd(PCI_LATENCY_TIMER, 1), 0x40);
	/* Byte write to the command register's high byte leaves the low byte alone. */
	wr(PCI_COMMAND, 1, PCI_COMMAND_MASTER);
	wr(PCI_COMMAND + 1, 1, PCI_COMMAND_INTX_DISABLE >> 8);
	cr_assert_eq(rd(PCI_COMMAND, 2), PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
}

Test(pci_cfg, command_writable_bits)
{
	uint16_t rw = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
		      PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;

	wr(PCI_COMMAND, 2, 0xffff);
	cr_assert_eq(rd(PCI_COMMAND, 2), rw);
	cr_assert(pci_bus_master_enabled(&fn));
	wr(PCI_COMMAND, 2, 0);
	cr_assert_eq(rd(PCI_COMMAND, 2), 0);
	cr_assert_not(pci_bus_master_enabled(&fn));
}

Test(pci_cfg, status_write_one_to_clear)
{
	uint8_t st[2] = {0, (PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_DETECTED_PARITY) >> 8};

	pci_cfg_poke(&fn, PCI_STATUS, st, 2);
	/* Writing zeros changes nothing; writing ones clears only those bits. */
	wr(PCI_STATUS, 2, 0);
	cr_assert_eq(rd(PCI_STATUS, 2), PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_DETECTED_PARITY);
	wr(PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT);
	cr_assert_eq(rd(PCI_STATUS, 2), PCI_STATUS_DETECTED_PARITY);
	/* A dword write to command also hits status: the Linux idiom clears all error bits. */
	wr(PCI_COMMAND, 4, 0xffff0000);
	cr_assert_eq(rd(PCI_STATUS, 2), 0);
	cr_assert_eq(rd(PCI_COMMAND, 2), 0);
}

Test(pci_cfg, out_of_range)
{
	cr_assert_eq(rd(PCI_CFG_SIZE, 4), 0xffffffff);
	cr_assert_eq(rd(PCI_CFG_SIZE + 0x100, 1), 0xff);
	/* Straddling the end: the bytes inside are real, those outside are ones. */
	uint8_t b[2] = {0x12, 0x34};
	pci_cfg_poke(&fn, 0xfe, b, 2);
	cr_assert_eq(rd(0xfe, 4), 0xffff3412);
	wr(PCI_CFG_SIZE, 4, 0);
	cr_assert_eq(rd(PCI_CFG_SIZE, 4), 0xffffffff);
	/* Sizes other than 1, 2, 4 are not config cycles. */
	uint8_t buf[8];
	pci_cfg_read(&fn, 0, buf, 3);
	cr_assert_eq(buf[0], 0xff);
	uint8_t w3[3] = {0xff, 0xff, 0xff};
	pci_cfg_write(&fn, PCI_INTERRUPT_LINE, w3, 3);
	cr_assert_eq(rd(PCI_INTERRUPT_LINE, 1), 0);
	/* Extended space only when the function has it. */
	fn.cfg_size = PCI_CFG_EXT_SIZE;
	cr_assert_eq(rd(PCI_CFG_SIZE, 4), 0);
}

static void add_bar64(int bar, uint64_t size)
{
	struct kerr err;

	cr_assert_eq(
	    pci_add_bar(&fn, bar, size, PCI_BAR_MEM64 | PCI_BAR_PREFETCH, NULL, NULL, &err), 0,
	    "%s", err.msg);
}

Test(pci_cfg, bar64_sizing_protocol)
{
	uint32_t type = PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH;
	uint32_t lo, hi;

	add_bar64(0, 0x4000);
	cr_assert_eq(rd(PCI_BASE_ADDRESS_0, 4), type);
	pci_set_bar_addr(&fn, 0, 0x812340000ULL);
	cr_assert_eq(rd(PCI_BASE_ADDRESS_0, 4), 0x12340000 | type);
	cr_assert_eq(rd(PCI_BASE_ADDRESS_1, 4), 0x8);

	/* What Linux's __pci_read_base does: save, write ones, read size, restore. */
	lo = rd(PCI_BASE_ADDRESS_0, 4);
	hi = rd(PCI_BASE_ADDRESS_1, 4);
	wr(PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	wr(PCI_BASE_ADDRESS_1, 4, 0xffffffff);
	cr_assert_eq(rd(PCI_BASE_ADDRESS_0, 4), 0xffffc000 | type);
	cr_assert_eq(rd(PCI_BASE_ADDRESS_1, 4), 0xffffffff);
	wr(PCI_BASE_ADDRESS_0, 4, lo);
	wr(PCI_BASE_ADDRESS_1, 4, hi);
	cr_assert_eq(pci_bar_addr(&fn, 0), 0x812340000ULL);
	/* Decoding stayed off, so nothing was mapped. */
	cr_assert_eq(remap.calls, 0);
	cr_assert_eq(pci_bar_mapped(&fn, 0), PCI_BAR_UNMAPPED);
}

Test(pci_cfg, bar64_larger_than_4g)
{
	add_bar64(2, 1ULL << 33);
	wr(PCI_BASE_ADDRESS_2, 4, 0xffffffff);
	wr(PCI_BASE_ADDRESS_3, 4, 0xffffffff);
	cr_assert_eq(rd(PCI_BASE_ADDRESS_2, 4), 0x0000000c);
	cr_assert_eq(rd(PCI_BASE_ADDRESS_3, 4), 0xfffffffe);
}

Test(pci_cfg, bar32_sizing)
{
	struct kerr err;

	cr_assert_eq(pci_add_bar(&fn, 1, 0x1000, 0, NULL, NULL, &err), 0);
	wr(PCI_BASE_ADDRESS_1, 4, 0xffffffff);
	cr_assert_eq(rd(PCI_BASE_ADDRESS_1, 4), 0xfffff000);
	wr(PCI_BASE_ADDRESS_1, 4, 0xc0001234);
	cr_assert_eq(rd(PCI_BASE_ADDRESS_1, 4), 0xc0001000);
}

Test(pci_cfg, bar_add_rejects_bad_requests)
{
	struct kerr err;

	cr_assert_eq(pci_add_bar(&fn, 0, 0x3000, PCI_BAR_MEM64, NULL, NULL, &err), -1);
	cr_assert_eq(pci_add_bar(&fn, 0, 8, PCI_BAR_MEM64, NULL, NULL, &err), -1);
	cr_assert_eq(pci_add_bar(&fn, 5, 0x1000, PCI_BAR_MEM64, NULL, NULL, &err), -1);
	cr_assert_eq(pci_add_bar(&fn, 6, 0x1000, 0, NULL, NULL, &err), -1);
	add_bar64(0, 0x1000);
	/* BAR 1 is the upper half of BAR 0. */
	cr_assert_eq(pci_add_bar(&fn, 1, 0x1000, 0, NULL, NULL, &err), -1);
	cr_assert_eq(pci_add_bar(&fn, 0, 0x1000, 0, NULL, NULL, &err), -1);
}

Test(pci_cfg, bar_remap_follows_decode_and_address)
{
	add_bar64(0, 0x4000);
	pci_set_bar_addr(&fn, 0, 0x800000000ULL);
	cr_assert_eq(remap.calls, 0);

	wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	cr_assert_eq(remap.calls, 1);
	cr_assert_eq(remap.bar, 0);
	cr_assert_eq(remap.old_addr, PCI_BAR_UNMAPPED);
	cr_assert_eq(remap.new_addr, 0x800000000ULL);
	cr_assert_eq(pci_bar_mapped(&fn, 0), 0x800000000ULL);

	/* Writing the same command again is not a change. */
	wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cr_assert_eq(remap.calls, 1);

	/* Guest moves the BAR while decoding: the high dword alone moves it. */
	wr(PCI_BASE_ADDRESS_1, 4, 0x9);
	cr_assert_eq(remap.calls, 2);
	cr_assert_eq(remap.old_addr, 0x800000000ULL);
	cr_assert_eq(remap.new_addr, 0x900000000ULL);

	/* Sizing with decode on leaves an all-ones BAR: that decodes nothing. */
	wr(PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	wr(PCI_BASE_ADDRESS_1, 4, 0xffffffff);
	cr_assert_eq(remap.new_addr, PCI_BAR_UNMAPPED);
	cr_assert_eq(pci_bar_mapped(&fn, 0), PCI_BAR_UNMAPPED);
	wr(PCI_BASE_ADDRESS_0, 4, 0x10000000);
	wr(PCI_BASE_ADDRESS_1, 4, 0);
	cr_assert_eq(remap.new_addr, 0x10000000);

	int before = remap.calls;
	wr(PCI_COMMAND, 2, 0);
	cr_assert_eq(remap.calls, before + 1);
	cr_assert_eq(remap.old_addr, 0x10000000);
	cr_assert_eq(remap.new_addr, PCI_BAR_UNMAPPED);
}

Test(pci_cfg, bar_address_zero_does_not_decode)
{
	add_bar64(0, 0x1000);
	wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	cr_assert_eq(remap.calls, 0);
	cr_assert_eq(pci_bar_mapped(&fn, 0), PCI_BAR_UNMAPPED);
}

struct cap_body {
	uint8_t id, next, len, a;
	uint32_t b;
};

Test(pci_cfg, capability_list_walk)
{
	struct kerr err;
	struct cap_body c1 = {0, 0, 8, 0x11, 0xaabbccdd};
	uint8_t c2[5] = {0, 0, 5, 0x22, 0x33};
	uint8_t c3[16] = {0xee, 0xee, 16};
	int o1, o2, o3;

	cr_assert_eq(rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
	o1 = pci_add_cap(&fn, PCI_CAP_ID_VNDR, &c1, sizeof(c1), NULL, &err);
	o2 = pci_add_cap(&fn, PCI_CAP_ID_VNDR, c2, sizeof(c2), NULL, &err);
	o3 = pci_add_cap(&fn, PCI_CAP_ID_MSIX, c3, sizeof(c3), NULL, &err);
	cr_assert_eq(o1, PCI_CAP_START);
	cr_assert_eq(o2, o1 + 8);
	cr_assert_eq(o3, o2 + 8, "caps are dword aligned");

	cr_assert(rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	unsigned int off = rd(PCI_CAPABILITY_LIST, 1);
	int ids[4], offs[4], n = 0;
	while (off && n < 4) {
		offs[n] = off;
		ids[n++] = rd(off, 1);
		off = rd(off + 1, 1);
	}
	cr_assert_eq(n, 3);
	cr_assert_eq(offs[0], o1);
	cr_assert_eq(offs[1], o2);
	cr_assert_eq(offs[2], o3);
	cr_assert_eq(ids[0], PCI_CAP_ID_VNDR);
	cr_assert_eq(ids[2], PCI_CAP_ID_MSIX);
	cr_assert_eq(rd(o1 + 2, 1), 8);
	cr_assert_eq(rd(o1 + 4, 4), 0xaabbccdd);
	cr_assert_eq(rd(o2 + 3, 2), 0x3322);
	cr_assert_eq(rd(o3 + 1, 1), 0, "last next pointer ends the list");
	cr_assert_eq(pci_find_cap(&fn, PCI_CAP_ID_MSIX), (unsigned int)o3);
	cr_assert_eq(pci_find_cap(&fn, PCI_CAP_ID_VNDR), (unsigned int)o1);
	cr_assert_eq(pci_find_cap(&fn, PCI_CAP_ID_EXP), 0);

	/* Guest writes to the list are ignored; the bodies were given no wmask. */
	wr(o1, 4, 0);
	wr(o1 + 4, 4, 0);
	cr_assert_eq(rd(o1 + 1, 1), (uint32_t)o2);
	cr_assert_eq(rd(o1 + 4, 4), 0xaabbccdd);
}

Test(pci_cfg, capability_wmask_and_overflow)
{
	struct kerr err;
	uint8_t cap[8] = {0}, wmask[8] = {0xff, 0xff, 0, 0, 0xff, 0x0f, 0, 0};
	int o = pci_add_cap(&fn, PCI_CAP_ID_VNDR, cap, sizeof(cap), wmask, &err);

	wr(o, 4, 0xffffffff);
	cr_assert_eq(rd(o, 2), PCI_CAP_ID_VNDR, "id/next never writable");
	wr(o + 4, 4, 0xffffffff);
	cr_assert_eq(rd(o + 4, 4), 0x0fff);

	uint8_t big[200] = {0};
	cr_assert_eq(pci_add_cap(&fn, PCI_CAP_ID_VNDR, big, sizeof(big), NULL, &err), -1);
	cr_assert_eq(rd(o + 1, 1), 0, "a failed add leaves the list alone");
	uint8_t fits[PCI_CFG_SIZE - PCI_CAP_START - 8] = {0};
	cr_assert_eq(pci_add_cap(&fn, PCI_CAP_ID_VNDR, fits, sizeof(fits), NULL, &err), o + 8);
	cr_assert_eq(pci_add_cap(&fn, PCI_CAP_ID_VNDR, cap, 4, NULL, &err), -1);
}

struct hook_log {
	int reads, writes;
	unsigned int offset, size;
	uint32_t data;
};

static void hook(void *opaque, struct pci_function *f, unsigned int offset, uint8_t *data,
		 unsigned int size, bool is_write)
{
	struct hook_log *l = opaque;
	uint8_t window[4];

	l->offset = offset;
	l->size = size;
	l->data = 0;
	for (unsigned int i = 0; i < size; i++)
		l->data |= (uint32_t)data[i] << (8 * i);
	if (is_write) {
		l->writes++;
		return;
	}
	l->reads++;
	/* Like VIRTIO_PCI_CAP_PCI_CFG: the window's content comes from elsewhere. */
	pci_cfg_peek(f, offset, window, size);
	for (unsigned int i = 0; i < size; i++)
		data[i] = window[i] ^ 0x5a;
}

Test(pci_cfg, config_hooks)
{
	struct kerr err;
	struct hook_log log = {0};
	uint8_t cap[12] = {0}, wmask[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
	int o = pci_add_cap(&fn, PCI_CAP_ID_VNDR, cap, sizeof(cap), wmask, &err);

	cr_assert_eq(pci_add_cfg_hook(&fn, o + 8, 4, hook, &log, &err), 0);
	wr(o + 8, 4, 0x11223344);
	cr_assert_eq(log.writes, 1);
	cr_assert_eq(log.offset, (unsigned int)o + 8);
	cr_assert_eq(log.size, 4);
	cr_assert_eq(log.data, 0x11223344);
	cr_assert_eq(rd(o + 8, 1), 0x44 ^ 0x5a, "read hook rewrites the data");
	cr_assert_eq(log.reads, 1);
	cr_assert_eq(log.data, 0x44, "read hook sees config bytes first");
	/* An access overlapping the range by one byte still reaches the hook. */
	wr(o + 6, 4, 0);
	cr_assert_eq(log.writes, 2);
	/* Accesses elsewhere do not. */
	rd(o, 4);
	wr(o + 4, 2, 0);
	cr_assert_eq(log.reads, 1);
	cr_assert_eq(log.writes, 2);
	cr_assert_eq(pci_add_cfg_hook(&fn, 4090, 10, hook, &log, &err), -1);
}

struct line_log {
	int level, sets;
};

static void line_set(void *opaque, unsigned int irq, int level)
{
	struct line_log *l = opaque;

	cr_assert_eq(irq, 10);
	l->level = level;
	l->sets++;
}

Test(pci_cfg, intx_status_and_disable)
{
	struct line_log l = {0};

	fn.intx = (struct irq_line){line_set, &l, 10};
	pci_intx_set(&fn, 1);
	pci_intx_set(&fn, 1);
	cr_assert_eq(l.level, 1);
	cr_assert_eq(l.sets, 1, "only changes reach the line");
	wr(PCI_COMMAND, 2, PCI_COMMAND_MASTER);
	cr_assert_eq(l.sets, 1);
	cr_assert(rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	wr(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
	cr_assert_eq(l.level, 0, "INTx disable lowers an asserted line");
	cr_assert(rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, "status still shows the request");
	wr(PCI_COMMAND, 2, 0);
	cr_assert_eq(l.level, 1);
	pci_intx_set(&fn, 0);
	cr_assert_eq(l.level, 0);
	cr_assert_eq(rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	cr_assert_eq(l.sets, 4);
	/* Interrupt status is read-only. */
	wr(PCI_STATUS, 2, 0xffff);
	cr_assert_eq(rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
}
