/* The PCI bus: CF8/CFC, ECAM, slots, the reset register and the BAR window. */
#include <criterion/criterion.h>
#include <linux/pci_regs.h>
#include <stdint.h>
#include <string.h>

#include "devices/pci.h"
#include "fixture_pci.h"

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
