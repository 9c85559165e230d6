/* PCI config space of one function, BAR sizing, capabilities, and the bus: CF8/CFC and ECAM. */
#include <criterion/criterion.h>
#include <linux/pci_regs.h>
#include <stdint.h>
#include <string.h>

#include "devices/pci.h"

/* Any 32-bit window will do; this is the one x86 uses. */
#define TEST_MMIO32_BASE 0xc0000000ULL
#define TEST_MMIO32_SIZE 0x20000000ULL

static const struct pci_ids test_ids = {
    .vendor = 0x1af4,
    .device = 0x1041,
    .subsys_vendor = 0x1af4,
    .subsys = 0x0001,
    .class_code = 0x020000,
    .revision = 0x01,
    .irq_pin = 1,
};

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

/* The bus. */

static struct pci_bus bus;
static struct pci_function dev3;
static int resets;

static void on_reset(void *opaque)
{
	(*(int *)opaque)++;
}

static void bus_setup(void)
{
	struct kerr err;

	pci_bus_init(&bus);
	pci_function_init(&dev3, &test_ids, "dev3");
	cr_assert_eq(pci_bus_add(&bus, &dev3, 3, &err), 3);
	resets = 0;
	bus.reset = on_reset;
	bus.reset_opaque = &resets;
}

static void bus_teardown(void)
{
	pci_function_destroy(&dev3);
	pci_bus_destroy(&bus);
}

TestSuite(pci_bus, .init = bus_setup, .fini = bus_teardown);

static void cf8(uint32_t addr)
{
	uint8_t b[4];

	memcpy(b, &addr, 4);
	pci_cf8_io(&bus, 0, b, 4, true);
}

static uint32_t cfc_read(unsigned int port_off, unsigned int size)
{
	uint8_t b[4] = {0};
	uint32_t v = 0;

	pci_cfc_io(&bus, port_off, b, size, false);
	memcpy(&v, b, size);
	return v;
}

static void cfc_write(unsigned int port_off, unsigned int size, uint32_t v)
{
	uint8_t b[4];

	memcpy(b, &v, 4);
	pci_cfc_io(&bus, port_off, b, size, true);
}

static uint32_t conf1(unsigned int busno, unsigned int dev, unsigned int fn_, unsigned int reg)
{
	return 0x80000000u | busno << 16 | dev << 11 | fn_ << 8 | (reg & 0xfc);
}

static uint32_t ecam_read(unsigned int dev, unsigned int fn_, unsigned int reg, unsigned int size)
{
	uint8_t b[4] = {0};
	uint32_t v = 0;

	pci_ecam_io(&bus, (uint64_t)dev << 15 | fn_ << 12 | reg, b, size, false);
	memcpy(&v, b, size);
	return v;
}

Test(pci_bus, host_bridge_ids)
{
	cf8(conf1(0, 0, 0, 0));
	cr_assert_eq(cfc_read(0, 4), PCI_HOST_BRIDGE_DEVICE << 16 | PCI_HOST_BRIDGE_VENDOR);
	cf8(conf1(0, 0, 0, PCI_CLASS_REVISION));
	cr_assert_eq(cfc_read(0, 4) >> 8, PCI_CLASS_HOST_BRIDGE);
	cf8(conf1(0, 0, 0, PCI_HEADER_TYPE));
	cr_assert_eq(cfc_read(2, 1), PCI_HEADER_TYPE_NORMAL);
}

Test(pci_bus, address_register_reads_back)
{
	uint8_t b[4];

	cf8(0x80000000);
	pci_cf8_io(&bus, 0, b, 4, false);
	cr_assert_eq(b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24, 0x80000000);
	/* Linux's type 1 probe pokes 0xCFB with a byte first; that must not touch the latch. */
	b[0] = 1;
	pci_cf8_io(&bus, 3, b, 1, true);
	/* Nor do narrow accesses at 0xCF8 itself (what the type 2 probe does). */
	b[0] = 0;
	pci_cf8_io(&bus, 0, b, 1, true);
	pci_cf8_io(&bus, 0, b, 2, true);
	pci_cf8_io(&bus, 0, b, 4, false);
	cr_assert_eq(b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24, 0x80000000);
	pci_cf8_io(&bus, 0, b, 1, false);
	cr_assert_eq(b[0], 0xff);
}

Test(pci_bus, enable_bit_clear_reads_ones)
{
	cf8(conf1(0, 0, 0, 0) & ~0x80000000u);
	cr_assert_eq(cfc_read(0, 4), 0xffffffff);
	cfc_write(0, 2, 0); /* must not reach anyone */
	cf8(conf1(0, 3, 0, PCI_COMMAND));
	cfc_write(0, 2, PCI_COMMAND_MASTER);
	cf8(conf1(0, 3, 0, PCI_COMMAND) & ~0x80000000u);
	cfc_write(0, 2, 0);
	cr_assert(pci_bus_master_enabled(&dev3));
}

Test(pci_bus, unpopulated_slots_bus_and_functions_read_ones)
{
	cf8(conf1(0, 5, 0, 0));
	cr_assert_eq(cfc_read(0, 4), 0xffffffff);
	cf8(conf1(0, 31, 0, 0));
	cr_assert_eq(cfc_read(0, 2), 0xffff);
	cf8(conf1(1, 3, 0, 0));
	cr_assert_eq(cfc_read(0, 4), 0xffffffff);
	cf8(conf1(0, 3, 1, 0));
	cr_assert_eq(cfc_read(0, 4), 0xffffffff);
	cf8(conf1(0, 3, 0, 0));
	cr_assert_eq(cfc_read(0, 4), 0x10411af4);
}

Test(pci_bus, byte_and_word_data_port_offsets)
{
	cf8(conf1(0, 3, 0, 0));
	cr_assert_eq(cfc_read(0, 1), 0xf4);
	cr_assert_eq(cfc_read(1, 1), 0x1a); /* 0xCFD */
	cr_assert_eq(cfc_read(2, 1), 0x41); /* 0xCFE */
	cr_assert_eq(cfc_read(3, 1), 0x10);
	cr_assert_eq(cfc_read(2, 2), 0x1041);
	cf8(conf1(0, 3, 0, PCI_INTERRUPT_LINE));
	cfc_write(1, 1, 0x04); /* pin: read-only */
	cfc_write(0, 1, 0x0b);
	cr_assert_eq(cfc_read(0, 2), 0x010b);
	cr_assert_eq(pci_cfg_read_val(&dev3, PCI_INTERRUPT_LINE, 1), 0x0b);
	/* An access running past 0xCFF is not a config cycle. */
	cr_assert_eq(cfc_read(2, 4), 0xffffffff);
}

Test(pci_bus, ecam_matches_cf8)
{
	uint8_t cap[8] = {0, 0, 8, 1, 2, 3, 4, 5};
	struct kerr err;

	cr_assert_eq(pci_add_bar(&dev3, 0, 0x1000, PCI_BAR_MEM64, NULL, NULL, &err), 0);
	pci_set_bar_addr(&dev3, 0, 0x123456000ULL);
	pci_add_cap(&dev3, PCI_CAP_ID_VNDR, cap, sizeof(cap), NULL, &err);
	for (unsigned int dev = 0; dev < 8; dev++) {
		for (unsigned int reg = 0; reg < PCI_CFG_SIZE; reg += 4) {
			cf8(conf1(0, dev, 0, reg));
			uint32_t a = cfc_read(0, 4);
			cr_assert_eq(ecam_read(dev, 0, reg, 4), a, "dev %u reg 0x%x", dev, reg);
			cr_assert_eq(ecam_read(dev, 0, reg + 1, 2), (a >> 8) & 0xffff);
			cr_assert_eq(ecam_read(dev, 0, reg + 3, 1), a >> 24);
		}
	}
	cr_assert_eq(ecam_read(3, 0, PCI_BASE_ADDRESS_1, 4), 0x1);
	/* ECAM writes land in the same config space. */
	uint8_t b[2] = {PCI_COMMAND_MEMORY, 0};
	pci_ecam_io(&bus, 3 << 15 | PCI_COMMAND, b, 2, true);
	cr_assert_eq(pci_bar_mapped(&dev3, 0), 0x123456000ULL);
	/* Beyond the 256 standard bytes of a conventional function, and other functions. */
	cr_assert_eq(ecam_read(3, 0, 0x100, 4), 0xffffffff);
	cr_assert_eq(ecam_read(3, 2, 0, 4), 0xffffffff);
	cr_assert_eq(ecam_read(3, 0, 0xffe, 4), 0xffffffff);
	uint8_t big[4] = {0};
	pci_ecam_io(&bus, 1 << 20 | 3 << 15, big, 4, false);
	cr_assert_eq(big[0], 0xff, "bus 1 does not exist");
}

Test(pci_bus, slots)
{
	struct pci_function a, b;
	struct kerr err;

	pci_function_init(&a, &test_ids, "a");
	pci_function_init(&b, &test_ids, "b");
	cr_assert_eq(pci_bus_add(&bus, &a, 3, &err), -1);
	cr_assert_eq(pci_bus_add(&bus, &a, 0, &err), -1);
	cr_assert_eq(pci_bus_add(&bus, &a, 32, &err), -1);
	cr_assert_eq(pci_bus_add(&bus, &a, -1, &err), 1);
	cr_assert_eq(pci_bus_add(&bus, &b, -1, &err), 2);
	pci_function_destroy(&a);
	pci_function_destroy(&b);
}

Test(pci_bus, reset_control_register)
{
	uint8_t v = 0x02;

	pci_cf8_io(&bus, 1, &v, 1, true);
	cr_assert_eq(resets, 0);
	v = 0x06;
	pci_cf8_io(&bus, 1, &v, 1, true);
	cr_assert_eq(resets, 1);
	v = 0;
	pci_cf8_io(&bus, 1, &v, 1, false);
	cr_assert_eq(v, 0x02);
}

struct bar_hit {
	int calls;
	uint64_t offset;
	unsigned int size;
	bool is_write;
};

static void bar_handler(void *opaque, uint64_t offset, uint8_t *data, unsigned int size,
			bool is_write)
{
	struct bar_hit *h = opaque;

	h->calls++;
	h->offset = offset;
	h->size = size;
	h->is_write = is_write;
	if (!is_write)
		memset(data, 0xab, size);
}

Test(pci_bus, window_allocates_and_dispatches)
{
	struct pci_window w32, w64;
	struct bar_hit hit = {0};
	struct kerr err;
	uint8_t d[4];
	uint64_t addr;

	pci_window_init(&w32, &bus, TEST_MMIO32_BASE, TEST_MMIO32_SIZE);
	pci_window_init(&w64, &bus, 0x1000000000ULL, 0x1000000000ULL);
	cr_assert_eq(pci_add_bar(&dev3, 0, 0x1000, 0, bar_handler, &hit, &err), 0);
	cr_assert_eq(pci_add_bar(&dev3, 2, 0x100000, PCI_BAR_MEM64, bar_handler, &hit, &err), 0);
	cr_assert_eq(pci_assign_bars(&dev3, &w32, &w64, &err), 0, "%s", err.msg);
	cr_assert_eq(pci_bar_addr(&dev3, 0), TEST_MMIO32_BASE);
	cr_assert_eq(pci_bar_addr(&dev3, 2), 0x1000000000ULL);

	/* Natural alignment after a smaller allocation. */
	cr_assert_eq(pci_window_alloc(&w32, 0x10000, &addr, &err), 0);
	cr_assert_eq(addr, TEST_MMIO32_BASE + 0x10000);
	cr_assert_eq(pci_window_alloc(&w32, 0x3000, &addr, &err), -1);
	cr_assert_eq(pci_window_alloc(&w32, TEST_MMIO32_SIZE, &addr, &err), -1);

	/* No decoding yet: nothing answers. */
	cr_assert_not(pci_bus_mmio(&bus, TEST_MMIO32_BASE + 4, d, 4, false));
	cr_assert_eq(hit.calls, 0);
	pci_cfg_write_val(&dev3, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	pci_window_io(&w32, 0x10, d, 4, false);
	cr_assert_eq(hit.calls, 1);
	cr_assert_eq(hit.offset, 0x10);
	cr_assert_eq(d[0], 0xab);
	pci_window_io(&w64, 0x800, d, 2, true);
	cr_assert_eq(hit.calls, 2);
	cr_assert_eq(hit.offset, 0x800);
	cr_assert(hit.is_write);
	/* Past the BAR's end. */
	pci_window_io(&w32, 0x1000, d, 4, false);
	cr_assert_eq(hit.calls, 2);
	cr_assert_eq(d[0], 0xff);
}

Test(pci_bus, window_exhaustion)
{
	struct pci_window w;
	struct kerr err;
	uint64_t a;

	pci_window_init(&w, &bus, 0x1000, 0x3000);
	cr_assert_eq(pci_window_alloc(&w, 0x2000, &a, &err), 0);
	cr_assert_eq(a, 0x2000);
	cr_assert_eq(pci_window_alloc(&w, 0x1000, &a, &err), -1);
	pci_window_init(&w, &bus, UINT64_MAX - 0xfff, 0x1000);
	cr_assert_eq(pci_window_alloc(&w, 0x2000, &a, &err), -1);
}
