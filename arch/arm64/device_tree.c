#include "arch/arm64/device_tree.h"

#include <libfdt.h>
#include <stdio.h>

#include "arch/arm64/layout.h"

/* Phandles of the nodes others point at. */
enum { PH_GIC = 1, PH_ITS, PH_CLK, PH_GPIO };

/* Interrupt specifier flags of the GIC binding. */
#define GIC_SPI 0
#define GIC_PPI 1
#define IRQ_LEVEL_HIGH 4
#define KEY_POWER 116 /* linux/input-event-codes.h */

/* Every libfdt call goes through here: the first failure is kept, later calls do nothing. */
struct writer {
	void *fdt;
	int err;
	char where[48]; /* the node or property that failed */
};

static void check(struct writer *w, int rc, const char *where)
{
	if (rc < 0 && !w->err) {
		w->err = rc;
		snprintf(w->where, sizeof(w->where), "%s", where);
	}
}

static void begin(struct writer *w, const char *name)
{
	if (!w->err)
		check(w, fdt_begin_node(w->fdt, name), name);
}

static void end(struct writer *w)
{
	if (!w->err)
		check(w, fdt_end_node(w->fdt), "end of node");
}

static void prop(struct writer *w, const char *name, const void *val, int len)
{
	if (!w->err)
		check(w, fdt_property(w->fdt, name, val, len), name);
}

static void prop_str(struct writer *w, const char *name, const char *s)
{
	if (!w->err)
		check(w, fdt_property_string(w->fdt, name, s), name);
}

static void prop_u32(struct writer *w, const char *name, uint32_t v)
{
	if (!w->err)
		check(w, fdt_property_cell(w->fdt, name, v), name);
}

static void prop_u64(struct writer *w, const char *name, uint64_t v)
{
	if (!w->err)
		check(w, fdt_property_u64(w->fdt, name, v), name);
}

/* An array of cells, converted to big-endian. */
static void prop_cells(struct writer *w, const char *name, const uint32_t *cells, int n)
{
	fdt32_t be[160];

	if (n > (int)(sizeof(be) / sizeof(be[0]))) {
		check(w, -FDT_ERR_NOSPACE, name);
		return;
	}
	for (int i = 0; i < n; i++)
		be[i] = cpu_to_fdt32(cells[i]);
	prop(w, name, be, n * (int)sizeof(be[0]));
}

/* reg = <base size> with two address and two size cells. */
static void prop_reg(struct writer *w, uint64_t base, uint64_t size)
{
	uint32_t c[] = {(uint32_t)(base >> 32), (uint32_t)base, (uint32_t)(size >> 32),
			(uint32_t)size};

	prop_cells(w, "reg", c, 4);
}

static void prop_spi(struct writer *w, uint32_t spi)
{
	uint32_t c[] = {GIC_SPI, spi, IRQ_LEVEL_HIGH};

	prop_cells(w, "interrupts", c, 3);
}

static void node_name(char *buf, size_t n, const char *name, uint64_t addr)
{
	snprintf(buf, n, "%s@%llx", name, (unsigned long long)addr);
}

static void cpus(struct writer *w, const struct arm64_fdt_desc *d)
{
	char name[32];

	begin(w, "cpus");
	prop_u32(w, "#address-cells", 2);
	prop_u32(w, "#size-cells", 0);
	for (unsigned int i = 0; i < d->nr_cpus; i++) {
		uint64_t mpidr = arm64_mpidr(i);
		node_name(name, sizeof(name), "cpu", mpidr);
		begin(w, name);
		prop_str(w, "device_type", "cpu");
		prop_str(w, "compatible", "arm,arm-v8");
		prop_str(w, "enable-method", "psci");
		prop_u64(w, "reg", mpidr);
		end(w);
	}
	end(w);
}

static void gic(struct writer *w, const struct arm64_fdt_desc *d)
{
	char name[32];
	uint32_t reg[] = {
	    0, (uint32_t)ARM64_GICD_BASE, 0, (uint32_t)ARM64_GICD_SIZE,
	    0, (uint32_t)ARM64_GICR_BASE, 0, (uint32_t)(ARM64_GICR_STRIDE * d->nr_cpus)};
	uint32_t maint[] = {GIC_PPI, ARM64_PPI_GIC_MAINT, IRQ_LEVEL_HIGH};

	node_name(name, sizeof(name), "intc", ARM64_GICD_BASE);
	begin(w, name);
	prop_str(w, "compatible", "arm,gic-v3");
	prop_u32(w, "#interrupt-cells", 3);
	prop(w, "interrupt-controller", NULL, 0);
	prop_u32(w, "#address-cells", 2);
	prop_u32(w, "#size-cells", 2);
	prop(w, "ranges", NULL, 0);
	prop_cells(w, "reg", reg, 8);
	prop_cells(w, "interrupts", maint, 3);
	prop_u32(w, "phandle", PH_GIC);
	if (d->its) {
		node_name(name, sizeof(name), "msi-controller", ARM64_GITS_BASE);
		begin(w, name);
		prop_str(w, "compatible", "arm,gic-v3-its");
		prop(w, "msi-controller", NULL, 0);
		prop_u32(w, "#msi-cells", 1);
		prop_reg(w, ARM64_GITS_BASE, ARM64_GITS_SIZE);
		prop_u32(w, "phandle", PH_ITS);
		end(w);
	}
	end(w);
}

static void timer_and_psci(struct writer *w)
{
	static const uint32_t ppis[] = {ARM64_PPI_TIMER_SEC, ARM64_PPI_TIMER_NS,
					ARM64_PPI_TIMER_VIRT, ARM64_PPI_TIMER_HYP};
	static const char psci_compat[] = "arm,psci-1.0\0arm,psci-0.2";
	uint32_t irqs[12];

	for (int i = 0; i < 4; i++) {
		irqs[3 * i] = GIC_PPI;
		irqs[3 * i + 1] = ppis[i];
		irqs[3 * i + 2] = IRQ_LEVEL_HIGH;
	}
	begin(w, "timer");
	prop_str(w, "compatible", "arm,armv8-timer");
	prop_cells(w, "interrupts", irqs, 12);
	prop(w, "always-on", NULL, 0);
	end(w);
	begin(w, "psci");
	prop(w, "compatible", psci_compat, sizeof(psci_compat));
	prop_str(w, "method", "hvc");
	end(w);
}

/* The fixed clock the PrimeCell devices (PL031, PL061) name as their bus clock. */
static void clock(struct writer *w)
{
	begin(w, "apb-pclk");
	prop_str(w, "compatible", "fixed-clock");
	prop_u32(w, "#clock-cells", 0);
	prop_u32(w, "clock-frequency", 24000000);
	prop_str(w, "clock-output-names", "clk24mhz");
	prop_u32(w, "phandle", PH_CLK);
	end(w);
}

static void primecell(struct writer *w, const char *name, const char *compat, size_t compat_len,
		      uint64_t base, uint64_t size, uint32_t spi)
{
	char n[32];

	node_name(n, sizeof(n), name, base);
	begin(w, n);
	prop(w, "compatible", compat, (int)compat_len);
	prop_reg(w, base, size);
	prop_spi(w, spi);
	prop_u32(w, "clocks", PH_CLK);
	prop_str(w, "clock-names", "apb_pclk");
}

static void platform(struct writer *w, const struct arm64_fdt_desc *d)
{
	static const char pl031[] = "arm,pl031\0arm,primecell";
	static const char pl061[] = "arm,pl061\0arm,primecell";
	char name[32];

	node_name(name, sizeof(name), "uart", ARM64_UART_BASE);
	begin(w, name);
	prop_str(w, "compatible", "ns16550a");
	prop_reg(w, ARM64_UART_BASE, ARM64_UART_SIZE);
	prop_spi(w, ARM64_SPI_UART);
	prop_u32(w, "clock-frequency", 1843200);
	end(w);

	primecell(w, "rtc", pl031, sizeof(pl031), ARM64_RTC_BASE, ARM64_RTC_SIZE, ARM64_SPI_RTC);
	end(w);

	if (d->power_key) {
		uint32_t gpios[] = {PH_GPIO, ARM64_GPIO_POWER_KEY, 0}; /* active high */
		primecell(w, "pl061", pl061, sizeof(pl061), ARM64_GPIO_BASE, ARM64_GPIO_SIZE,
			  ARM64_SPI_GPIO);
		prop(w, "gpio-controller", NULL, 0);
		prop_u32(w, "#gpio-cells", 2);
		prop_u32(w, "phandle", PH_GPIO);
		end(w);
		begin(w, "gpio-keys");
		prop_str(w, "compatible", "gpio-keys");
		begin(w, "poweroff");
		prop_str(w, "label", "GPIO Key Poweroff");
		prop_u32(w, "linux,code", KEY_POWER);
		prop_cells(w, "gpios", gpios, 3);
		end(w);
		end(w);
	}

	node_name(name, sizeof(name), "debug-exit", ARM64_DEBUG_EXIT_BASE);
	begin(w, name);
	prop_str(w, "compatible", "kestrel,debug-exit");
	prop_reg(w, ARM64_DEBUG_EXIT_BASE, ARM64_DEBUG_EXIT_SIZE);
	end(w);
}

static void virtio_mmio(struct writer *w, const struct arm64_fdt_desc *d)
{
	char name[40];

	for (unsigned int i = 0; i < d->nr_mmio; i++) {
		node_name(name, sizeof(name), "virtio_mmio", d->mmio[i].base);
		begin(w, name);
		prop_str(w, "compatible", "virtio,mmio");
		prop_reg(w, d->mmio[i].base, d->mmio[i].size);
		prop_spi(w, d->mmio[i].spi);
		prop(w, "dma-coherent", NULL, 0);
		end(w);
	}
}

/* INTA..INTD of slot s swizzle over four SPIs, as a PCI bridge would: (s + pin) % 4. */
static void pci(struct writer *w, const struct arm64_fdt_desc *d)
{
	uint32_t bus_range[] = {0, 0};
	uint32_t ranges[] = {0x02000000,
			     0,
			     (uint32_t)ARM64_PCI_MMIO32_BASE,
			     0,
			     (uint32_t)ARM64_PCI_MMIO32_BASE,
			     0,
			     (uint32_t)ARM64_PCI_MMIO32_SIZE};
	uint32_t mask[] = {0x1800, 0, 0, 7};
	uint32_t map[4 * 4 * 10];
	int n = 0;
	char name[32];

	for (uint32_t slot = 0; slot < 4; slot++)
		for (uint32_t pin = 1; pin <= 4; pin++) {
			uint32_t e[] = {slot << 11,
					0,
					0,
					pin,
					PH_GIC,
					0,
					0,
					GIC_SPI,
					ARM64_SPI_PCI_INTX + (slot + pin - 1) % 4,
					IRQ_LEVEL_HIGH};
			for (int i = 0; i < 10; i++)
				map[n++] = e[i];
		}
	node_name(name, sizeof(name), "pci", ARM64_PCI_ECAM_BASE);
	begin(w, name);
	prop_str(w, "compatible", "pci-host-ecam-generic");
	prop_str(w, "device_type", "pci");
	prop_u32(w, "#address-cells", 3);
	prop_u32(w, "#size-cells", 2);
	prop_u32(w, "#interrupt-cells", 1);
	prop_u32(w, "linux,pci-domain", 0);
	prop_cells(w, "bus-range", bus_range, 2);
	prop_reg(w, ARM64_PCI_ECAM_BASE, ARM64_PCI_ECAM_SIZE);
	prop_cells(w, "ranges", ranges, 7);
	prop(w, "dma-coherent", NULL, 0);
	prop_cells(w, "interrupt-map-mask", mask, 4);
	prop_cells(w, "interrupt-map", map, n);
	if (d->its) {
		uint32_t msi_map[] = {0, PH_ITS, 0, 0x10000}; /* every requester ID, as is */
		prop_cells(w, "msi-map", msi_map, 4);
	}
	end(w);
}

static void chosen(struct writer *w, const struct arm64_fdt_desc *d)
{
	char stdout_path[40];

	node_name(stdout_path, sizeof(stdout_path), "/uart", ARM64_UART_BASE);
	begin(w, "chosen");
	prop_str(w, "bootargs", d->bootargs ? d->bootargs : "");
	prop_str(w, "stdout-path", stdout_path);
	if (d->initrd_size) {
		prop_u64(w, "linux,initrd-start", d->initrd_start);
		prop_u64(w, "linux,initrd-end", d->initrd_start + d->initrd_size);
	}
	end(w);
}

uint64_t arm64_mpidr(unsigned int id)
{
	return (uint64_t)((id >> 4) & 0xff) << 8 | (id & 0xf);
}

int arm64_fdt_build(const struct arm64_fdt_desc *d, void *buf, size_t size, struct kerr *err)
{
	struct writer w = {.fdt = buf};
	char name[32];

	if (size > INT32_MAX)
		size = INT32_MAX;
	if (d->nr_cpus == 0 || ARM64_GICR_STRIDE * d->nr_cpus > ARM64_GICR_MAX_SIZE)
		return kerr_set(err, "device tree: %u vCPUs do not fit the GIC's redistributors",
				d->nr_cpus);
	check(&w, fdt_create(buf, (int)size), "header");
	check(&w, w.err ? 0 : fdt_finish_reservemap(buf), "reserve map");
	begin(&w, "");
	prop_str(&w, "compatible", "linux,dummy-virt");
	prop_str(&w, "model", "kestrel");
	prop_u32(&w, "#address-cells", 2);
	prop_u32(&w, "#size-cells", 2);
	prop_u32(&w, "interrupt-parent", PH_GIC);
	chosen(&w, d);
	node_name(name, sizeof(name), "memory", d->ram_base);
	begin(&w, name);
	prop_str(&w, "device_type", "memory");
	prop_reg(&w, d->ram_base, d->ram_size);
	end(&w);
	cpus(&w, d);
	timer_and_psci(&w);
	gic(&w, d);
	clock(&w);
	platform(&w, d);
	virtio_mmio(&w, d);
	if (d->pci)
		pci(&w, d);
	end(&w);
	check(&w, w.err ? 0 : fdt_finish(buf), "finish");
	if (w.err)
		return kerr_set(err, "device tree: %s at %s", fdt_strerror(w.err), w.where);
	return (int)fdt_totalsize(buf);
}
