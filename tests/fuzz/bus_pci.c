/* The virtio-pci side of the harness: a PCI bus with one function, its BARs assigned. */
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>
#include <stdlib.h>

#include "devices/pci.h"
#include "tests/fuzz/bus.h"
#include "tests/fuzz/harness.h"
#include "virtio/pci.h"

/* Any 32-bit window will do; this is the one x86 uses. */
#define TEST_MMIO32_BASE 0xc0000000ULL
#define TEST_MMIO32_SIZE 0x20000000ULL

struct pci_rig {
	struct pci_bus bus;
	struct pci_window win;
	struct virtio_pci *vp;
};

static uint32_t next_gsi;

static int fake_ioeventfd(void *opaque, int efd, uint64_t addr, bool assign, struct kerr *err)
{
	(void)opaque, (void)efd, (void)addr, (void)assign, (void)err;
	return 0;
}

static int fake_route_add(void *opaque, uint32_t devid, uint32_t *gsi, struct kerr *err)
{
	(void)opaque, (void)devid, (void)err;
	*gsi = next_gsi++;
	return 0;
}

/* KVM would consume an attached irqfd's counter; nothing reads it here, which is harmless. */
static int fake_irqfd(void *opaque, int efd, uint32_t gsi, bool assign, struct kerr *err)
{
	(void)opaque, (void)efd, (void)gsi, (void)assign, (void)err;
	return 0;
}

static int fake_route_set(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data,
			  struct kerr *err)
{
	(void)opaque, (void)gsi, (void)addr, (void)data, (void)err;
	return 0;
}

static void fake_intx(void *opaque, unsigned int irq, int level)
{
	(void)opaque, (void)irq, (void)level;
}

static void *up(struct virtio_dev *d, struct event_loop *loop)
{
	struct pci_rig *g = calloc(1, sizeof(*g));
	struct virtio_pci_platform plat = {
	    .opaque = g,
	    .ioeventfd = fake_ioeventfd,
	    .msi_route_add = fake_route_add,
	    .msi_route_set = fake_route_set,
	    .irqfd = fake_irqfd,
	    .loop = loop,
	};
	struct irq_line intx = {.set = fake_intx, .opaque = g, .irq = 11};
	struct kerr err;

	if (!g)
		fuzz_die("out of memory");
	if (virtio_pci_create(&g->vp, d, &plat, intx, &err))
		fuzz_die(err.msg);
	pci_bus_init(&g->bus);
	if (pci_bus_add(&g->bus, &g->vp->fn, -1, &err) < 0)
		fuzz_die(err.msg);
	pci_window_init(&g->win, &g->bus, TEST_MMIO32_BASE, TEST_MMIO32_SIZE);
	if (pci_assign_bars(&g->vp->fn, &g->win, NULL, &err))
		fuzz_die(err.msg);
	/* What firmware leaves behind: the BAR decodes and the function may master the bus. */
	pci_cfg_write_val(&g->vp->fn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	return g;
}

static void down(void *s)
{
	struct pci_rig *g = s;

	virtio_pci_destroy(g->vp);
	pci_bus_destroy(&g->bus);
	free(g);
}

static struct virtio_transport *core(void *s)
{
	return &((struct pci_rig *)s)->vp->core;
}

static void cfg_io(void *s, uint16_t off, uint8_t *buf, unsigned int width, bool is_write)
{
	struct pci_rig *g = s;

	if (is_write)
		pci_cfg_write(&g->vp->fn, off % PCI_CFG_EXT_SIZE, buf, width);
	else
		pci_cfg_read(&g->vp->fn, off % PCI_CFG_EXT_SIZE, buf, width);
}

/* Through the bus, so the guest's BAR programming and decode bits apply. */
static void win_io(void *s, uint64_t off, uint8_t *buf, unsigned int width, bool is_write)
{
	struct pci_rig *g = s;

	pci_bus_mmio(&g->bus, pci_bar_addr(&g->vp->fn, 0) + off, buf, width, is_write);
}

static void bar_write(struct pci_rig *g, uint64_t off, unsigned int width, uint64_t val)
{
	uint8_t buf[8];

	for (unsigned int i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(val >> (8 * i));
	win_io(g, off, buf, width, true);
}

#define COMMON(f) (VPCI_COMMON_OFF + offsetof(struct virtio_pci_common_cfg, f))

static void status(void *s, uint8_t val)
{
	bar_write(s, COMMON(device_status), 1, val);
}

static void features(void *s, uint64_t val)
{
	bar_write(s, COMMON(guest_feature_select), 4, 0);
	bar_write(s, COMMON(guest_feature), 4, (uint32_t)val);
	bar_write(s, COMMON(guest_feature_select), 4, 1);
	bar_write(s, COMMON(guest_feature), 4, val >> 32);
}

static void queue(void *s, uint16_t q, uint16_t size, uint32_t desc, uint32_t avail, uint32_t used,
		  bool enable)
{
	bar_write(s, COMMON(queue_select), 2, q);
	bar_write(s, COMMON(queue_size), 2, size);
	bar_write(s, COMMON(queue_desc_lo), 4, desc);
	bar_write(s, COMMON(queue_desc_hi), 4, 0);
	bar_write(s, COMMON(queue_avail_lo), 4, avail);
	bar_write(s, COMMON(queue_avail_hi), 4, 0);
	bar_write(s, COMMON(queue_used_lo), 4, used);
	bar_write(s, COMMON(queue_used_hi), 4, 0);
	if (enable)
		bar_write(s, COMMON(queue_enable), 2, 1);
}

static void kick(void *s, uint16_t q)
{
	bar_write(s, VPCI_NOTIFY_OFF + (uint64_t)q * VPCI_NOTIFY_MULT, 2, q);
}

const struct fuzz_bus fuzz_bus_pci = {
    .up = up,
    .down = down,
    .core = core,
    .cfg_io = cfg_io,
    .win_io = win_io,
    .status = status,
    .features = features,
    .queue = queue,
    .kick = kick,
};
