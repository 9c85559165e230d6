/* MSI-X: capability, table programming, masking with the pending bit array, INTx fallback. */
#include <criterion/criterion.h>
#include <linux/pci_regs.h>
#include <stdint.h>
#include <string.h>

#include "devices/msix.h"
#include "devices/pci.h"

#define NR_VECTORS 70 /* more than 64: the PBA takes two qwords */
#define TABLE_OFF 0x2000
#define PBA_OFF 0x3000

static const struct pci_ids ids = {.vendor = 0x1af4, .device = 0x1041, .class_code = 0x020000};

struct fired {
	unsigned int vector;
	uint64_t addr;
	uint32_t data;
};

struct changed {
	unsigned int vector;
	uint64_t addr;
	uint32_t data;
	bool masked;
};

static struct {
	int fires, changes;
	struct fired last_fire;
	struct changed last_change;
	int fire_seen_change; /* changes counted when the last fire happened */
} log;

static struct pci_function fn;
static struct msix mx;
static unsigned int cap;

static void on_fire(void *opaque, unsigned int vector, uint64_t addr, uint32_t data)
{
	cr_assert_eq(opaque, &log);
	log.fires++;
	log.last_fire = (struct fired){vector, addr, data};
	log.fire_seen_change = log.changes;
}

static void on_change(void *opaque, unsigned int vector, uint64_t addr, uint32_t data, bool masked)
{
	cr_assert_eq(opaque, &log);
	log.changes++;
	log.last_change = (struct changed){vector, addr, data, masked};
}

static void setup(void)
{
	struct msix_ops ops = {on_fire, on_change, &log};
	struct kerr err;
	int off;

	memset(&log, 0, sizeof(log));
	pci_function_init(&fn, &ids, "msix-test");
	cr_assert_eq(msix_init(&mx, NR_VECTORS, &ops, &err), 0, "%s", err.msg);
	off = msix_add_cap(&mx, &fn, 2, TABLE_OFF, 4, PBA_OFF, &err);
	cr_assert_gt(off, 0, "%s", err.msg);
	cap = off;
}

static void teardown(void)
{
	msix_destroy(&mx);
	pci_function_destroy(&fn);
}

TestSuite(msix, .init = setup, .fini = teardown);

static uint32_t table_read(uint64_t off)
{
	uint8_t b[4];

	msix_table_io(&mx, off, b, 4, false);
	return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

static void table_write(uint64_t off, uint32_t v)
{
	uint8_t b[4] = {v, v >> 8, v >> 16, v >> 24};

	msix_table_io(&mx, off, b, 4, true);
}

static uint64_t pba_read(uint64_t off)
{
	uint8_t b[8];
	uint64_t v = 0;

	msix_pba_io(&mx, off, b, 8, false);
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void control(uint16_t v)
{
	pci_cfg_write_val(&fn, cap + PCI_MSIX_FLAGS, 2, v);
}

static void program(unsigned int v, uint64_t addr, uint32_t data, bool mask)
{
	table_write(v * 16 + PCI_MSIX_ENTRY_LOWER_ADDR, (uint32_t)addr);
	table_write(v * 16 + PCI_MSIX_ENTRY_UPPER_ADDR, addr >> 32);
	table_write(v * 16 + PCI_MSIX_ENTRY_DATA, data);
	table_write(v * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, mask);
}

Test(msix, capability_layout)
{
	cr_assert_eq(pci_find_cap(&fn, PCI_CAP_ID_MSIX), cap);
	cr_assert(pci_cfg_read_val(&fn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	cr_assert_eq(pci_cfg_read_val(&fn, cap + PCI_MSIX_FLAGS, 2), NR_VECTORS - 1);
	cr_assert_eq(pci_cfg_read_val(&fn, cap + PCI_MSIX_TABLE, 4), TABLE_OFF | 2);
	cr_assert_eq(pci_cfg_read_val(&fn, cap + PCI_MSIX_PBA, 4), PBA_OFF | 4);
	cr_assert_eq(MSIX_TABLE_SIZE(NR_VECTORS), NR_VECTORS * 16);
	cr_assert_eq(MSIX_PBA_SIZE(NR_VECTORS), 16);

	/* Only enable and function mask are writable. */
	control(0xffff);
	cr_assert_eq(pci_cfg_read_val(&fn, cap + PCI_MSIX_FLAGS, 2),
		     PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | (NR_VECTORS - 1));
	cr_assert(msix_enabled(&mx));
	pci_cfg_write_val(&fn, cap + PCI_MSIX_TABLE, 4, 0);
	cr_assert_eq(pci_cfg_read_val(&fn, cap + PCI_MSIX_TABLE, 4), TABLE_OFF | 2);
	/* A byte write to the control's high byte works too (Linux uses word writes). */
	pci_cfg_write_val(&fn, cap + PCI_MSIX_FLAGS + 1, 1, 0);
	cr_assert_not(msix_enabled(&mx));
}

Test(msix, bad_init_and_cap)
{
	struct msix m2;
	struct kerr err;

	cr_assert_eq(msix_init(&m2, 0, NULL, &err), -1);
	cr_assert_eq(msix_init(&m2, MSIX_MAX_VECTORS + 1, NULL, &err), -1);
	cr_assert_eq(msix_init(&m2, 1, NULL, &err), 0);
	cr_assert_eq(msix_add_cap(&m2, &fn, 6, 0, 0, 0x100, &err), -1);
	cr_assert_eq(msix_add_cap(&m2, &fn, 0, 0x4, 0, 0x100, &err), -1);
	msix_destroy(&m2);
}

Test(msix, vectors_start_masked)
{
	for (unsigned int v = 0; v < NR_VECTORS; v++)
		cr_assert_eq(table_read(v * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL),
			     PCI_MSIX_ENTRY_CTRL_MASKBIT);
	cr_assert_eq(pba_read(0), 0);
	cr_assert_eq(pba_read(8), 0);
}

Test(msix, table_entry_programming)
{
	program(5, 0xfee01000ULL | (0x12ULL << 32), 0x4041, false);
	cr_assert_eq(table_read(5 * 16 + 0), 0xfee01000);
	cr_assert_eq(table_read(5 * 16 + 4), 0x12);
	cr_assert_eq(table_read(5 * 16 + 8), 0x4041);
	cr_assert_eq(table_read(5 * 16 + 12), 0);
	/* Reserved vector control bits read as zero. */
	table_write(5 * 16 + 12, 0xfffffffe);
	cr_assert_eq(table_read(5 * 16 + 12), 0);
	/* Neighbours untouched. */
	cr_assert_eq(table_read(4 * 16 + 8), 0);
	cr_assert_eq(table_read(6 * 16 + 0), 0);

	/* Every change was reported; MSI-X is off, so the vector counts as masked. */
	cr_assert_eq(log.changes, 3, "addr lo, addr hi, data; unmask is no effective change");
	cr_assert_eq(log.last_change.vector, 5);
	cr_assert_eq(log.last_change.addr, 0x12fee01000ULL);
	cr_assert_eq(log.last_change.data, 0x4041);
	cr_assert(log.last_change.masked);

	control(PCI_MSIX_FLAGS_ENABLE);
	/* Only vector 5 is unmasked, so only it changes effective state. */
	cr_assert_eq(log.changes, 4);
	cr_assert_eq(log.last_change.vector, 5);
	cr_assert_not(log.last_change.masked);
}

Test(msix, qword_access)
{
	uint8_t b[8] = {0x00, 0x20, 0xe0, 0xfe, 0x01, 0, 0, 0};
	uint8_t r[8];

	msix_table_io(&mx, 3 * 16, b, 8, true);
	cr_assert_eq(table_read(3 * 16), 0xfee02000);
	cr_assert_eq(table_read(3 * 16 + 4), 1);
	uint8_t dc[8] = {0x33, 0, 0, 0, 0, 0, 0, 0};
	msix_table_io(&mx, 3 * 16 + 8, dc, 8, true);
	msix_table_io(&mx, 3 * 16 + 8, r, 8, false);
	cr_assert_eq(r[0], 0x33);
	cr_assert_eq(r[4], 0, "mask cleared by the qword write");
	cr_assert_eq(log.changes, 2);
}

Test(msix, disabled_falls_back_to_intx)
{
	program(0, 0xfee00000, 0x30, false);
	cr_assert_not(msix_notify(&mx, 0));
	cr_assert_eq(log.fires, 0);
	cr_assert_eq(pba_read(0), 0, "no pending bit while disabled");
	/* The function mask does not change that. */
	control(PCI_MSIX_FLAGS_MASKALL);
	cr_assert_not(msix_notify(&mx, 0));
}

Test(msix, enabled_unmasked_fires)
{
	program(2, 0xfee00000, 0x31, false);
	control(PCI_MSIX_FLAGS_ENABLE);
	cr_assert(msix_notify(&mx, 2));
	cr_assert_eq(log.fires, 1);
	cr_assert_eq(log.last_fire.vector, 2);
	cr_assert_eq(log.last_fire.addr, 0xfee00000);
	cr_assert_eq(log.last_fire.data, 0x31);
	cr_assert_eq(pba_read(0), 0);
	/* Out of range (VIRTIO_MSI_NO_VECTOR): MSI-X owns it, nothing fires. */
	cr_assert(msix_notify(&mx, 0xffff));
	cr_assert(msix_notify(&mx, NR_VECTORS));
	cr_assert_eq(log.fires, 1);
}

Test(msix, vector_mask_sets_pending_then_fires_once_on_unmask)
{
	program(66, 0xfee00000, 0x45, true);
	control(PCI_MSIX_FLAGS_ENABLE);
	cr_assert(msix_notify(&mx, 66));
	cr_assert(msix_notify(&mx, 66));
	cr_assert_eq(log.fires, 0);
	cr_assert_eq(pba_read(8), 1ULL << (66 - 64));
	cr_assert_eq(pba_read(0), 0);

	int changes = log.changes;
	table_write(66 * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
	cr_assert_eq(log.fires, 1, "two notifies while masked deliver one message");
	cr_assert_eq(log.last_fire.vector, 66);
	cr_assert_eq(log.last_fire.data, 0x45);
	cr_assert_eq(log.changes, changes + 1);
	cr_assert_eq(log.fire_seen_change, changes + 1, "route updated before the fire");
	cr_assert_eq(pba_read(8), 0);

	/* Unmasking again does nothing more. */
	table_write(66 * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 1);
	table_write(66 * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
	cr_assert_eq(log.fires, 1);
}

Test(msix, function_mask_sets_pending_then_fires_on_unmask)
{
	program(1, 0xfee00000, 0x50, false);
	program(7, 0xfee00000, 0x57, true);
	control(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	cr_assert(msix_notify(&mx, 1));
	cr_assert(msix_notify(&mx, 7));
	cr_assert_eq(log.fires, 0);
	cr_assert_eq(pba_read(0), (1ULL << 1) | (1ULL << 7));

	control(PCI_MSIX_FLAGS_ENABLE);
	cr_assert_eq(log.fires, 1, "vector 7 is still masked on its own");
	cr_assert_eq(log.last_fire.vector, 1);
	cr_assert_eq(pba_read(0), 1ULL << 7);
	cr_assert_not(log.last_change.masked);
	cr_assert_eq(log.last_change.vector, 1);

	table_write(7 * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
	cr_assert_eq(log.fires, 2);
	cr_assert_eq(log.last_fire.vector, 7);
	cr_assert_eq(log.last_fire.data, 0x57);
	cr_assert_eq(pba_read(0), 0);
}

Test(msix, pba_is_read_only)
{
	uint8_t ones[8];

	program(3, 0xfee00000, 0x33, true);
	control(PCI_MSIX_FLAGS_ENABLE);
	msix_notify(&mx, 3);
	memset(ones, 0xff, sizeof(ones));
	msix_pba_io(&mx, 0, ones, 8, true);
	cr_assert_eq(pba_read(0), 1ULL << 3);
	memset(ones, 0, sizeof(ones));
	msix_pba_io(&mx, 0, ones, 8, true);
	cr_assert_eq(pba_read(0), 1ULL << 3);
	/* Narrow and out-of-range reads. */
	uint8_t b[4];
	msix_pba_io(&mx, 0, b, 4, false);
	cr_assert_eq(b[0], 1 << 3);
	msix_pba_io(&mx, 16, b, 4, false);
	cr_assert_eq(b[0], 0xff);
	uint8_t q[8] = {0};
	msix_pba_io(&mx, 12, q, 8, false);
	cr_assert_eq(q[7], 0xff, "a read running past the PBA is not served");
}

Test(msix, out_of_range_and_misaligned_table_accesses_ignored)
{
	uint8_t b[4] = {0xff, 0xff, 0xff, 0xff};
	uint8_t two[2] = {0x12, 0x34};

	program(NR_VECTORS - 1, 0xfee00000, 0x99, true);
	int changes = log.changes;
	table_write(NR_VECTORS * 16, 0x12345678);
	table_write(NR_VECTORS * 16 + 8, 0);
	cr_assert_eq(table_read(NR_VECTORS * 16), 0xffffffff);
	cr_assert_eq(table_read(1ULL << 40), 0xffffffff);
	/* Misaligned and narrow writes are not table writes. */
	msix_table_io(&mx, (NR_VECTORS - 1) * 16 + 10, two, 2, true);
	msix_table_io(&mx, (NR_VECTORS - 1) * 16 + 2, b, 4, true);
	msix_table_io(&mx, (NR_VECTORS - 1) * 16 + 4, b, 8, true);
	cr_assert_eq(table_read((NR_VECTORS - 1) * 16), 0xfee00000);
	cr_assert_eq(table_read((NR_VECTORS - 1) * 16 + 4), 0);
	cr_assert_eq(table_read((NR_VECTORS - 1) * 16 + 8), 0x99);
	cr_assert_eq(table_read((NR_VECTORS - 1) * 16 + 12), 1);
	cr_assert_eq(log.changes, changes);
}

Test(msix, disable_masks_everything)
{
	program(9, 0xfee00000, 0x60, false);
	control(PCI_MSIX_FLAGS_ENABLE);
	cr_assert_not(log.last_change.masked);
	control(0);
	cr_assert_eq(log.last_change.vector, 9);
	cr_assert(log.last_change.masked);
	cr_assert_not(msix_notify(&mx, 9));
	cr_assert_eq(log.fires, 0);
}
