/* The x86 RAM layout, its e820 map, and guest_mem_ptr's bounds checks. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "vmm/guest_mem.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void check_layout(uint64_t ram)
{
	struct guest_mem_region r[2];
	int n = x86_ram_layout(ram, r);
	uint64_t total = 0;

	cr_assert_eq(n, ram > 3 * GiB ? 2 : 1, "ram %llu MiB: %d regions", ram / MiB, n);
	cr_assert_eq(r[0].gpa, 0);
	cr_assert_eq(r[0].size, ram < 3 * GiB ? ram : 3 * GiB);
	cr_assert_null(r[0].host);
	total += r[0].size;
	if (n == 2) {
		cr_assert_eq(r[1].gpa, X86_4G);
		cr_assert_eq(r[1].size, ram - 3 * GiB);
		cr_assert_null(r[1].host);
		total += r[1].size;
	}
	cr_assert_eq(total, ram);
}

Test(layout, ram_256m)
{
	check_layout(256 * MiB);
}

Test(layout, ram_3g_exactly)
{
	check_layout(3 * GiB);
}

Test(layout, ram_4g)
{
	check_layout(4 * GiB);
}

Test(layout, ram_8g)
{
	check_layout(8 * GiB);
}

Test(layout, rejects_bad_sizes)
{
	struct guest_mem_region r[2];

	cr_assert_eq(x86_ram_layout(0, r), -1);
	cr_assert_eq(x86_ram_layout(16 * MiB - 4096, r), -1);
	cr_assert_eq(x86_ram_layout(16 * MiB, r), 1);
	cr_assert_eq(x86_ram_layout(64 * MiB + 512, r), -1, "not page-aligned");
	cr_assert_eq(x86_ram_layout(UINT64_MAX & ~0xfffULL, r), -1, "high region would wrap");
}

static void check_e820(uint64_t ram)
{
	struct boot_e820_entry e[16];
	struct guest_mem_region r[2];
	uint64_t low = ram < 3 * GiB ? ram : 3 * GiB;
	uint64_t ram_total = 0;
	int nr = x86_ram_layout(ram, r);
	int n = x86_build_e820(ram, e, 16);

	cr_assert_eq(n, ram > 3 * GiB ? 8 : 7, "ram %llu MiB: %d entries", ram / MiB, n);

	const struct boot_e820_entry want[] = {
	    {0, X86_EBDA_ADDR, 1},
	    {X86_EBDA_ADDR, X86_BIOS_START - X86_EBDA_ADDR, 2},
	    {X86_ACPI_ADDR, X86_ACPI_SIZE, 3}, /* the ACPI tables: ACPI reclaimable memory */
	    {0xf0000, 0x10000, 2},
	    {X86_HIMEM_START, low - X86_HIMEM_START, 1},
	    {X86_PCI_ECAM_BASE, X86_PCI_ECAM_SIZE, 2},	     /* the ECAM window in the PCI hole */
	    {X86_VIRTIO_MMIO_BASE, X86_VIRTIO_MMIO_SIZE, 2}, /* the virtio-mmio windows */
	    {X86_4G, ram - 3 * GiB, 1},
	};
	for (int i = 0; i < n; i++) {
		cr_assert_eq(e[i].addr, want[i].addr, "entry %d", i);
		cr_assert_eq(e[i].size, want[i].size, "entry %d", i);
		cr_assert_eq(e[i].type, want[i].type, "entry %d", i);
	}

	for (int i = 0; i < n; i++) {
		cr_assert_gt(e[i].size, 0);
		if (i > 0)
			cr_assert_leq(e[i - 1].addr + e[i - 1].size, e[i].addr,
				      "entries %d and %d overlap or are unsorted", i - 1, i);
		if (e[i].type != 1)
			continue;
		ram_total += e[i].size;
		/* Every RAM entry must be backed by a region of the layout. */
		bool backed = false;
		for (int j = 0; j < nr; j++)
			backed |=
			    e[i].addr >= r[j].gpa && e[i].addr + e[i].size <= r[j].gpa + r[j].size;
		cr_assert(backed, "e820 RAM entry %d is not in the RAM layout", i);
	}
	/* All RAM except the EBDA and the legacy hole below 1 MiB is usable. */
	cr_assert_eq(ram_total, ram - (X86_HIMEM_START - X86_EBDA_ADDR));
}

Test(e820, ram_256m)
{
	check_e820(256 * MiB);
}

Test(e820, ram_3g_exactly)
{
	check_e820(3 * GiB);
}

Test(e820, ram_4g)
{
	check_e820(4 * GiB);
}

Test(e820, ram_8g)
{
	check_e820(8 * GiB);
}

Test(e820, rejects_small_table_and_bad_ram)
{
	struct boot_e820_entry e[16];

	cr_assert_eq(x86_build_e820(256 * MiB, e, 6), -1);
	cr_assert_eq(x86_build_e820(256 * MiB, e, 7), 7);
	cr_assert_eq(x86_build_e820(4 * GiB, e, 7), -1);
	cr_assert_eq(x86_build_e820(4 * GiB, e, 8), 8);
	cr_assert_eq(x86_build_e820(1 * MiB, e, 16), -1);
}

/* RAM split around the hole: [0, 3G) and [4G, 4G + 256M). Mapped lazily, so cheap. */
static struct guest_mem gm;

static void map_split(void)
{
	struct guest_mem_region r[2];
	struct kerr err = {{0}};
	int n = x86_ram_layout(3 * GiB + 256 * MiB, r);

	cr_assert_eq(n, 2);
	cr_assert_eq(guest_mem_map(&gm, r, n, &err), 0, "%s", err.msg);
}

static void unmap(void)
{
	guest_mem_unmap(&gm);
}

TestSuite(guest_mem_ptr, .init = map_split, .fini = unmap);

Test(guest_mem_ptr, inside_ram)
{
	cr_assert_not_null(guest_mem_ptr(&gm, 0, 3 * GiB));
	cr_assert_not_null(guest_mem_ptr(&gm, 3 * GiB - 1, 1));
	cr_assert_not_null(guest_mem_ptr(&gm, X86_4G, 256 * MiB));
	cr_assert_not_null(guest_mem_ptr(&gm, X86_4G + 256 * MiB - 8, 8));
	cr_assert_not_null(guest_mem_ptr(&gm, 4096, 0));
	cr_assert_eq((uint8_t *)guest_mem_ptr(&gm, 4096, 1),
		     (uint8_t *)guest_mem_ptr(&gm, 0, 1) + 4096);
}

Test(guest_mem_ptr, rejects_straddling_end_of_ram)
{
	cr_assert_null(guest_mem_ptr(&gm, 3 * GiB - 1, 2), "into the hole");
	cr_assert_null(guest_mem_ptr(&gm, 0, 3 * GiB + 1));
	cr_assert_null(guest_mem_ptr(&gm, 3 * GiB, 1), "in the hole");
	cr_assert_null(guest_mem_ptr(&gm, X86_4G - 1, 2), "from the hole into high RAM");
	cr_assert_null(guest_mem_ptr(&gm, X86_4G + 256 * MiB - 8, 9), "past the end");
	cr_assert_null(guest_mem_ptr(&gm, X86_4G + 256 * MiB, 1));
}

Test(guest_mem_ptr, rejects_wrapping_past_2_64)
{
	cr_assert_null(guest_mem_ptr(&gm, 4096, UINT64_MAX));
	cr_assert_null(guest_mem_ptr(&gm, 4096, UINT64_MAX - 4095), "gpa + len wraps to 0");
	cr_assert_null(guest_mem_ptr(&gm, X86_4G, UINT64_MAX - X86_4G + 1), "wraps to 0");
	cr_assert_null(guest_mem_ptr(&gm, UINT64_MAX, 1));
	cr_assert_null(guest_mem_ptr(&gm, UINT64_MAX, 2));
	cr_assert_null(guest_mem_ptr(&gm, UINT64_MAX - 4095, 8192));
}

Test(guest_mem_ptr, write_checks_range)
{
	uint8_t buf[16] = {1, 2, 3};

	cr_assert(guest_mem_write(&gm, 3 * GiB - 16, buf, 16));
	cr_assert_not(guest_mem_write(&gm, 3 * GiB - 8, buf, 16));
	cr_assert_not(guest_mem_write(&gm, UINT64_MAX - 7, buf, 16));
}
