/*
 * The arm64 device tree (arch/arm64/device_tree.c) for a sample machine, read back node by
 * node with libfdt's read API: what Linux looks for in each binding.
 */
#include <criterion/criterion.h>
#include <libfdt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/arm64/device_tree.h"
#include "arch/arm64/layout.h"

static uint8_t blob[64 * 1024];

static const struct arm64_fdt_window mmio[] = {
    {.base = ARM64_VIRTIO_MMIO_BASE, .size = 0x1000, .spi = ARM64_SPI_VIRTIO_MMIO},
    {.base = ARM64_VIRTIO_MMIO_BASE + 0x1000, .size = 0x1000, .spi = ARM64_SPI_VIRTIO_MMIO + 1},
};

static struct arm64_fdt_desc sample(void)
{
	return (struct arm64_fdt_desc){
	    .nr_cpus = 18,
	    .ram_base = ARM64_RAM_BASE,
	    .ram_size = 512ULL << 20,
	    .bootargs = "console=ttyS0 panic=1",
	    .initrd_start = 0x5e000000,
	    .initrd_size = 0x1234567,
	    .its = true,
	    .mmio = mmio,
	    .nr_mmio = 2,
	    .pci = true,
	    .power_key = true,
	};
}

static int build(const struct arm64_fdt_desc *d)
{
	struct kerr err;
	int len = arm64_fdt_build(d, blob, sizeof(blob), &err);

	cr_assert_gt(len, 0, "%s", err.msg);
	cr_assert_eq(fdt_check_header(blob), 0);
	cr_assert_eq((int)fdt_totalsize(blob), len);
	return len;
}

static int node(const char *path)
{
	int off = fdt_path_offset(blob, path);

	cr_assert_geq(off, 0, "no node %s", path);
	return off;
}

static const void *get(int off, const char *name, int *len)
{
	const void *p = fdt_getprop(blob, off, name, len);

	cr_assert_not_null(p, "no property %s", name);
	return p;
}

static void expect_str(const char *path, const char *name, const char *want)
{
	int len;
	const char *s = get(node(path), name, &len);

	cr_assert_str_eq(s, want, "%s:%s", path, name);
}

/* The property is exactly these cells. */
static void expect_cells(const char *path, const char *name, const uint32_t *want, int n)
{
	int len;
	const fdt32_t *p = get(node(path), name, &len);

	cr_assert_eq(len, n * 4, "%s:%s has %d bytes, want %d cells", path, name, len, n);
	for (int i = 0; i < n; i++)
		cr_assert_eq(fdt32_to_cpu(p[i]), want[i], "%s:%s cell %d", path, name, i);
}

static void expect_u32(const char *path, const char *name, uint32_t want)
{
	expect_cells(path, name, &want, 1);
}

static void expect_flag(const char *path, const char *name)
{
	int len;

	get(node(path), name, &len);
	cr_assert_eq(len, 0, "%s:%s is a flag", path, name);
}

static void expect_reg(const char *path, uint64_t base, uint64_t size)
{
	uint32_t c[] = {(uint32_t)(base >> 32), (uint32_t)base, (uint32_t)(size >> 32),
			(uint32_t)size};

	expect_cells(path, "reg", c, 4);
}

static uint32_t phandle_of(const char *path)
{
	uint32_t ph = fdt_get_phandle(blob, node(path));

	cr_assert_neq(ph, 0, "%s has no phandle", path);
	return ph;
}

Test(arm64_device_tree, root_memory_and_chosen)
{
	int len;
	fdt64_t v;

	struct arm64_fdt_desc d = sample();

	build(&d);
	expect_u32("/", "#address-cells", 2);
	expect_u32("/", "#size-cells", 2);
	expect_u32("/", "interrupt-parent", phandle_of("/intc@8000000"));
	expect_str("/memory@40000000", "device_type", "memory");
	expect_reg("/memory@40000000", ARM64_RAM_BASE, 512ULL << 20);
	expect_str("/chosen", "bootargs", "console=ttyS0 panic=1");
	expect_str("/chosen", "stdout-path", "/uart@9000000");
	/* Properties are only 4-byte aligned: copy before reading 64 bits. */
	memcpy(&v, get(node("/chosen"), "linux,initrd-start", &len), sizeof(v));
	cr_assert_eq(len, 8);
	cr_assert_eq(fdt64_to_cpu(v), 0x5e000000);
	memcpy(&v, get(node("/chosen"), "linux,initrd-end", &len), sizeof(v));
	cr_assert_eq(fdt64_to_cpu(v), 0x5e000000 + 0x1234567);
}

Test(arm64_device_tree, every_cpu_by_mpidr_with_psci)
{
	struct arm64_fdt_desc d = sample();
	char path[64];

	build(&d);
	expect_u32("/cpus", "#address-cells", 2);
	expect_u32("/cpus", "#size-cells", 0);
	for (unsigned int i = 0; i < d.nr_cpus; i++) {
		uint64_t mpidr = arm64_mpidr(i);
		uint32_t reg[] = {0, (uint32_t)mpidr};
		snprintf(path, sizeof(path), "/cpus/cpu@%llx", (unsigned long long)mpidr);
		expect_str(path, "device_type", "cpu");
		expect_str(path, "enable-method", "psci");
		expect_cells(path, "reg", reg, 2);
	}
	cr_assert_eq(arm64_mpidr(17), 0x101, "Aff1 = id / 16, Aff0 = id %% 16");
	cr_assert_lt(fdt_path_offset(blob, "/cpus/cpu@102"), 0, "no 19th CPU");
	expect_str("/psci", "compatible", "arm,psci-1.0");
	expect_str("/psci", "method", "hvc");
}

Test(arm64_device_tree, gic_v3_with_its_and_timer)
{
	uint32_t reg[] = {0, 0x08000000, 0, 0x10000, 0, 0x080a0000, 0, 18 * 0x20000};
	uint32_t timer[] = {1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4};

	struct arm64_fdt_desc d = sample();
	build(&d);
	expect_str("/intc@8000000", "compatible", "arm,gic-v3");
	expect_u32("/intc@8000000", "#interrupt-cells", 3);
	expect_flag("/intc@8000000", "interrupt-controller");
	expect_cells("/intc@8000000", "reg", reg, 8);
	expect_str("/intc@8000000/msi-controller@8080000", "compatible", "arm,gic-v3-its");
	expect_flag("/intc@8000000/msi-controller@8080000", "msi-controller");
	expect_u32("/intc@8000000/msi-controller@8080000", "#msi-cells", 1);
	expect_reg("/intc@8000000/msi-controller@8080000", ARM64_GITS_BASE, ARM64_GITS_SIZE);
	expect_str("/timer", "compatible", "arm,armv8-timer");
	expect_cells("/timer", "interrupts", timer, 12);
}

Test(arm64_device_tree, uart_rtc_power_key_and_debug_exit)
{
	uint32_t uart_irq[] = {0, ARM64_SPI_UART, 4};
	int len;

	struct arm64_fdt_desc d = sample();
	build(&d);
	expect_str("/uart@9000000", "compatible", "ns16550a");
	expect_reg("/uart@9000000", ARM64_UART_BASE, ARM64_UART_SIZE);
	expect_cells("/uart@9000000", "interrupts", uart_irq, 3);
	expect_u32("/uart@9000000", "clock-frequency", 1843200);

	const char *c = get(node("/rtc@9010000"), "compatible", &len);
	cr_assert_eq(len, (int)sizeof("arm,pl031\0arm,primecell"));
	cr_assert_str_eq(c, "arm,pl031");
	cr_assert_str_eq(c + strlen(c) + 1, "arm,primecell");
	expect_u32("/rtc@9010000", "clocks", phandle_of("/apb-pclk"));
	expect_str("/rtc@9010000", "clock-names", "apb_pclk");

	uint32_t gpios[] = {phandle_of("/pl061@9030000"), 3, 0};
	expect_flag("/pl061@9030000", "gpio-controller");
	expect_str("/gpio-keys", "compatible", "gpio-keys");
	expect_u32("/gpio-keys/poweroff", "linux,code", 116);
	expect_cells("/gpio-keys/poweroff", "gpios", gpios, 3);

	expect_str("/debug-exit@9040000", "compatible", "kestrel,debug-exit");
	expect_reg("/debug-exit@9040000", ARM64_DEBUG_EXIT_BASE, ARM64_DEBUG_EXIT_SIZE);
}

Test(arm64_device_tree, virtio_mmio_devices)
{
	uint32_t irq1[] = {0, ARM64_SPI_VIRTIO_MMIO + 1, 4};

	struct arm64_fdt_desc d = sample();
	build(&d);
	expect_str("/virtio_mmio@a000000", "compatible", "virtio,mmio");
	expect_reg("/virtio_mmio@a001000", ARM64_VIRTIO_MMIO_BASE + 0x1000, 0x1000);
	expect_cells("/virtio_mmio@a001000", "interrupts", irq1, 3);
	expect_flag("/virtio_mmio@a001000", "dma-coherent");
	cr_assert_lt(fdt_path_offset(blob, "/virtio_mmio@a002000"), 0);
}

Test(arm64_device_tree, pci_host_bridge_with_intx_map_and_msi_map)
{
	struct arm64_fdt_desc d = sample();
	uint32_t ranges[] = {0x02000000, 0, 0x10000000, 0, 0x10000000, 0, 0x2f000000};
	uint32_t mask[] = {0x1800, 0, 0, 7};
	int len;

	build(&d);
	const char *p = "/pci@3f000000";
	uint32_t gic = phandle_of("/intc@8000000");
	uint32_t its = phandle_of("/intc@8000000/msi-controller@8080000");
	uint32_t msi_map[] = {0, its, 0, 0x10000};
	expect_str(p, "compatible", "pci-host-ecam-generic");
	expect_str(p, "device_type", "pci");
	expect_u32(p, "#address-cells", 3);
	expect_u32(p, "#size-cells", 2);
	expect_reg(p, ARM64_PCI_ECAM_BASE, ARM64_PCI_ECAM_SIZE);
	expect_cells(p, "ranges", ranges, 7);
	expect_cells(p, "interrupt-map-mask", mask, 4);
	expect_cells(p, "msi-map", msi_map, 4);

	/* Slot 2, INTB: (2 + 1) % 4 = SPI base + 3, level high, on the GIC. */
	const fdt32_t *m = get(node(p), "interrupt-map", &len);
	cr_assert_eq(len, 16 * 10 * 4);
	const fdt32_t *e = m + 10 * (2 * 4 + 1);
	uint32_t want[] = {2 << 11, 0, 0, 2, gic, 0, 0, 0, ARM64_SPI_PCI_INTX + 3, 4};
	for (int i = 0; i < 10; i++)
		cr_assert_eq(fdt32_to_cpu(e[i]), want[i], "cell %d", i);

	/* Without the ITS, no msi-map: INTx only. */
	d.its = false;
	build(&d);
	cr_assert_null(fdt_getprop(blob, node(p), "msi-map", &len));
	cr_assert_lt(fdt_path_offset(blob, "/intc@8000000/msi-controller@8080000"), 0);
}

Test(arm64_device_tree, optional_parts_and_errors)
{
	struct arm64_fdt_desc d = sample();
	struct kerr err;

	d.pci = false;
	d.power_key = false;
	d.initrd_size = 0;
	d.nr_mmio = 0;
	build(&d);
	cr_assert_lt(fdt_path_offset(blob, "/pci@3f000000"), 0);
	cr_assert_lt(fdt_path_offset(blob, "/gpio-keys"), 0);
	cr_assert_null(fdt_getprop(blob, node("/chosen"), "linux,initrd-start", NULL));

	cr_assert_eq(arm64_fdt_build(&d, blob, 256, &err), -1);
	cr_assert(strstr(err.msg, "FDT_ERR_NOSPACE"), "%s", err.msg);
	d.nr_cpus = 124;
	cr_assert_eq(arm64_fdt_build(&d, blob, sizeof(blob), &err), -1);
	cr_assert(strstr(err.msg, "124 vCPUs"), "%s", err.msg);
}

/* dtc (device-tree-compiler) reads the blob back without a warning, when it is installed. */
Test(arm64_device_tree, dtc_reads_it_cleanly)
{
	struct arm64_fdt_desc d = sample();
	char path[] = "/tmp/kestrel-dtb-XXXXXX", cmd[256];
	int len = build(&d), fd = mkstemp(path);
	FILE *f;
	char line[512];

	if (system("command -v dtc >/dev/null 2>&1") != 0)
		cr_skip_test("dtc is not installed (package device-tree-compiler)");
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, blob, (size_t)len), len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "dtc -I dtb -O dts %s 2>&1 >/dev/null; echo status $?", path);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(line, sizeof(line), f));
	pclose(f);
	unlink(path);
	cr_assert_str_eq(line, "status 0\n", "dtc said: %s", line);
}
