/*
 * The modern virtio-pci transport driven the way a guest driver drives it: config cycles on
 * the function, MMIO on BAR 0 through the PCI bus. Behind it sit a fake device (records the
 * ops the transport calls) and a fake platform (records ioeventfd binds and MSI routes). The
 * event loop is initialized but never started, so event_loop_call runs its work at once and
 * posted work runs when a test drains the loop's call queue.
 */
#include <criterion/criterion.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <unistd.h>

#include "devices/pci.h"
#include "virtio/pci.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"

/* Any 32-bit window will do; this is the one x86 uses. */
#define TEST_DEVID 0x28 /* slot 5: what an ITS translates MSIs by */
#define TEST_MMIO32_BASE 0xc0000000ULL
#define TEST_MMIO32_SIZE 0x20000000ULL

#define RAM_SIZE (1ULL << 20)
#define NQ 2
#define QMAX 256
#define CFG_LEN 8
#define FAKE_ID 4 /* entropy device: any id works for the transport */
#define FIRST_GSI 24
#define INTX_IRQ 11

/* Ring addresses per queue: 64 KiB apart, each ring on its own page. */
#define DESC(q) (0x10000ULL * ((q) + 1))
#define AVAIL(q) (DESC(q) + 0x1000)
#define USED(q) (DESC(q) + 0x2000)

#define HOST_FEATURES                                                                              \
	((1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << 3) | \
	 (1ULL << 35))

static struct guest_mem gm;
static struct event_loop loop;
static struct pci_bus bus;
static struct pci_window win;
static struct virtio_dev dev;
static struct virtio_pci *vp;
static uint64_t bar_base;

/* ---- fake device ---- */

static uint8_t cfg_bytes[CFG_LEN];
static unsigned int activates, resets, config_reads, config_writes;
static unsigned int notifies[NQ], irq_changes[NQ];
static int activate_result;
static uint32_t last_cfg_off, last_cfg_len;
static uint8_t last_cfg_data[8];

static void fake_config_read(struct virtio_dev *d, uint32_t offset, uint8_t *data, uint32_t len)
{
	(void)d;
	config_reads++;
	last_cfg_off = offset;
	last_cfg_len = len;
	memcpy(data, cfg_bytes + offset, len);
}

static void fake_config_write(struct virtio_dev *d, uint32_t offset, const uint8_t *data,
			      uint32_t len)
{
	(void)d;
	config_writes++;
	last_cfg_off = offset;
	last_cfg_len = len;
	memcpy(last_cfg_data, data, len < sizeof(last_cfg_data) ? len : sizeof(last_cfg_data));
}

/* Activations without a reset in between: must stay 0 whatever the driver does. */
static bool fake_live;
static unsigned int double_activations;

static int fake_activate(struct virtio_dev *d)
{
	(void)d;
	if (fake_live)
		double_activations++;
	fake_live = activate_result == 0;
	activates++;
	return activate_result;
}

/* Run inside the device's reset, as another vCPU would while it is going on. */
static void (*during_reset)(void);

static void fake_reset(struct virtio_dev *d)
{
	(void)d;
	fake_live = false;
	resets++;
	if (during_reset)
		during_reset();
}

static void fake_queue_notify(struct virtio_dev *d, uint16_t q)
{
	(void)d;
	cr_assert_lt(q, NQ);
	notifies[q]++;
}

static void fake_queue_irq_changed(struct virtio_dev *d, uint16_t q)
{
	(void)d;
	cr_assert_lt(q, NQ);
	irq_changes[q]++;
}

/* Feature sets containing all of these bits are refused (a dependency rule). */
static uint64_t refused_combo;

static bool fake_validate_features(struct virtio_dev *d, uint64_t f)
{
	(void)d;
	return !refused_combo || (f & refused_combo) != refused_combo;
}

static const struct virtio_dev_ops fake_ops = {
    .config_read = fake_config_read,
    .validate_features = fake_validate_features,
    .config_write = fake_config_write,
    .activate = fake_activate,
    .reset = fake_reset,
    .queue_notify = fake_queue_notify,
    .queue_irq_changed = fake_queue_irq_changed,
};

/* ---- fake platform ---- */

#define MAX_REC 64

struct ioefd_rec {
	int efd;
	uint64_t addr;
	bool assign;
};

struct route_rec {
	uint32_t gsi;
	uint64_t addr;
	uint32_t data;
};

static struct ioefd_rec ioefds[MAX_REC];
static unsigned int nr_ioefds;
static unsigned int nr_route_adds;
static uint32_t route_devids[MAX_REC];
static struct route_rec route_sets[MAX_REC];
static unsigned int nr_route_sets;
static int intx_level;
static unsigned int intx_calls;

static int fake_ioeventfd(void *opaque, int efd, uint64_t addr, bool assign, struct kerr *err)
{
	(void)opaque;
	(void)err;
	cr_assert_lt(nr_ioefds, MAX_REC);
	ioefds[nr_ioefds++] = (struct ioefd_rec){efd, addr, assign};
	return 0;
}

static int fake_route_add(void *opaque, uint32_t devid, uint32_t *gsi, struct kerr *err)
{
	(void)opaque;
	(void)err;
	cr_assert_lt(nr_route_adds, MAX_REC);
	route_devids[nr_route_adds] = devid;
	*gsi = FIRST_GSI + nr_route_adds++;
	return 0;
}

/* Which eventfd is attached as the irqfd of each GSI (-1: none). */
static int irqfd_of[FIRST_GSI + MAX_REC];

static int fake_irqfd(void *opaque, int efd, uint32_t gsi, bool assign, struct kerr *err)
{
	(void)opaque;
	(void)err;
	cr_assert_lt(gsi, FIRST_GSI + MAX_REC);
	if (assign) {
		cr_assert_eq(irqfd_of[gsi], -1, "irqfd attached twice");
		irqfd_of[gsi] = efd;
	} else {
		cr_assert_eq(irqfd_of[gsi], efd, "detaching an irqfd that is not attached");
		irqfd_of[gsi] = -1;
	}
	return 0;
}

static int fake_route_set(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data,
			  struct kerr *err)
{
	(void)opaque;
	(void)err;
	cr_assert_lt(nr_route_sets, MAX_REC);
	route_sets[nr_route_sets++] = (struct route_rec){gsi, addr, data};
	return 0;
}

static void fake_intx(void *opaque, unsigned int irq, int level)
{
	(void)opaque;
	cr_assert_eq(irq, INTX_IRQ);
	intx_level = level;
	intx_calls++;
}

/* ---- set-up ---- */

static void reset_records(void)
{
	activates = resets = config_reads = config_writes = 0;
	memset(notifies, 0, sizeof(notifies));
	memset(irq_changes, 0, sizeof(irq_changes));
	activate_result = 0;
	during_reset = NULL;
	refused_combo = 0;
	fake_live = false;
	double_activations = 0;
	nr_ioefds = nr_route_adds = nr_route_sets = 0;
	intx_level = 0;
	intx_calls = 0;
	for (unsigned int i = 0; i < FIRST_GSI + MAX_REC; i++)
		irqfd_of[i] = -1;
	for (unsigned int i = 0; i < CFG_LEN; i++)
		cfg_bytes[i] = (uint8_t)(0xa0 + i);
}

/* Runs the work the transport posted to the (not running) event loop. */
static void drain_loop(void)
{
	loop.call_handler.fn(loop.call_handler.opaque, EPOLLIN);
}

static void enable_memory(bool on)
{
	uint32_t cmd = pci_cfg_read_val(&vp->fn, PCI_COMMAND, 2);

	cmd = on ? cmd | PCI_COMMAND_MEMORY : cmd & ~(uint32_t)PCI_COMMAND_MEMORY;
	pci_cfg_write_val(&vp->fn, PCI_COMMAND, 2, cmd);
}

static void setup(void)
{
	struct guest_mem_region layout = {.gpa = 0, .size = RAM_SIZE};
	struct virtio_pci_platform plat = {
	    .opaque = &dev,
	    .ioeventfd = fake_ioeventfd,
	    .msi_route_add = fake_route_add,
	    .msi_route_set = fake_route_set,
	    .irqfd = fake_irqfd,
	    .loop = &loop,
	    .msi_devid = TEST_DEVID,
	};
	struct irq_line intx = {fake_intx, &dev, INTX_IRQ};
	struct kerr err;

	reset_records();
	cr_assert_eq(guest_mem_map(&gm, &layout, 1, NULL), 0);
	cr_assert_eq(event_loop_init(&loop, NULL), 0);
	memset(&dev, 0, sizeof(dev));
	dev.name = "fake";
	dev.device_id = FAKE_ID;
	dev.ops = &fake_ops;
	dev.mem = &gm;
	dev.host_features = HOST_FEATURES;
	dev.config_len = CFG_LEN;
	dev.num_queues = NQ;
	dev.queue_max_size = QMAX;
	cr_assert_eq(virtio_pci_create(&vp, &dev, &plat, intx, &err), 0, "%s", err.msg);
	pci_bus_init(&bus);
	cr_assert_geq(pci_bus_add(&bus, &vp->fn, -1, NULL), 1);
	pci_window_init(&win, &bus, TEST_MMIO32_BASE, TEST_MMIO32_SIZE);
	cr_assert_eq(pci_assign_bars(&vp->fn, &win, NULL, NULL), 0);
	bar_base = pci_bar_addr(&vp->fn, 0);
	cr_assert_eq(bar_base % VPCI_BAR_SIZE, 0);
	enable_memory(true);
	cr_assert_eq(pci_bar_mapped(&vp->fn, 0), bar_base);
}

static void teardown(void)
{
	if (vp) {
		drain_loop();
		virtio_pci_destroy(vp);
		vp = NULL;
	}
	pci_bus_destroy(&bus);
	event_loop_destroy(&loop);
	guest_mem_unmap(&gm);
}

TestSuite(virtio_pci, .init = setup, .fini = teardown);

/* ---- guest-side accessors ---- */

static void bar_write(uint64_t off, unsigned int size, uint64_t v)
{
	uint8_t b[8];

	for (unsigned int i = 0; i < size; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	cr_assert(pci_bus_mmio(&bus, bar_base + off, b, size, true), "BAR 0 does not decode");
}

static uint64_t bar_read(uint64_t off, unsigned int size)
{
	uint8_t b[8];
	uint64_t v = 0;

	memset(b, 0xee, sizeof(b));
	cr_assert(pci_bus_mmio(&bus, bar_base + off, b, size, false), "BAR 0 does not decode");
	for (unsigned int i = 0; i < size; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

#define CC(field) offsetof(struct virtio_pci_common_cfg, field)
#define CSIZE(field) sizeof(((struct virtio_pci_common_cfg *)0)->field)
#define CW(field, v) bar_write(VPCI_COMMON_OFF + CC(field), CSIZE(field), (v))
#define CR(field) bar_read(VPCI_COMMON_OFF + CC(field), CSIZE(field))

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK
#define S_NR VIRTIO_CONFIG_S_NEEDS_RESET

#define VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define ISR_QUEUE 0x1 /* ISR bit 0: used buffers */

static uint64_t device_features(void)
{
	uint64_t f;

	CW(device_feature_select, 0);
	f = CR(device_feature);
	CW(device_feature_select, 1);
	f |= CR(device_feature) << 32;
	return f;
}

static void write_guest_features(uint64_t f)
{
	CW(guest_feature_select, 0);
	CW(guest_feature, (uint32_t)f);
	CW(guest_feature_select, 1);
	CW(guest_feature, f >> 32);
}

static uint64_t read_guest_features(void)
{
	uint64_t f;

	CW(guest_feature_select, 0);
	f = CR(guest_feature);
	CW(guest_feature_select, 1);
	f |= CR(guest_feature) << 32;
	return f;
}

/* ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns the status read back. */
static uint8_t negotiate(uint64_t features)
{
	CW(device_status, S_ACK);
	CW(device_status, S_ACK | S_DRV);
	write_guest_features(features);
	CW(device_status, S_ACK | S_DRV | S_FOK);
	return (uint8_t)CR(device_status);
}

static void program_queue(uint16_t q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	CW(queue_select, q);
	CW(queue_size, size);
	CW(queue_desc_lo, (uint32_t)desc);
	CW(queue_desc_hi, desc >> 32);
	CW(queue_avail_lo, (uint32_t)avail);
	CW(queue_avail_hi, avail >> 32);
	CW(queue_used_lo, (uint32_t)used);
	CW(queue_used_hi, used >> 32);
}

static void enable_queue(uint16_t q)
{
	program_queue(q, QMAX, DESC(q), AVAIL(q), USED(q));
	CW(queue_enable, 1);
	cr_assert_eq(CR(queue_enable), 1);
}

/* The whole driver bring-up: features, both queues, DRIVER_OK. */
static void bring_up(void)
{
	unsigned int before = activates;

	cr_assert_eq(negotiate(VERSION_1 | HOST_FEATURES), S_ACK | S_DRV | S_FOK);
	for (uint16_t q = 0; q < NQ; q++)
		enable_queue(q);
	CW(device_status, S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(CR(device_status), S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(activates, before + 1);
}

static uint64_t read_efd(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static unsigned int msix_cap(void)
{
	unsigned int cap = pci_find_cap(&vp->fn, PCI_CAP_ID_MSIX);

	cr_assert_neq(cap, 0, "no MSI-X capability");
	return cap;
}

static void msix_enable(bool on)
{
	pci_cfg_write_val(&vp->fn, msix_cap() + PCI_MSIX_FLAGS, 2, on ? PCI_MSIX_FLAGS_ENABLE : 0);
}

static void msix_program(unsigned int v, uint64_t addr, uint32_t data, bool masked)
{
	uint64_t e = VPCI_MSIX_TABLE_OFF + 16ULL * v;

	bar_write(e + PCI_MSIX_ENTRY_LOWER_ADDR, 4, (uint32_t)addr);
	bar_write(e + PCI_MSIX_ENTRY_UPPER_ADDR, 4, addr >> 32);
	bar_write(e + PCI_MSIX_ENTRY_DATA, 4, data);
	bar_write(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0);
}

/* Collects the vendor-specific capabilities by cfg_type; returns how many there are. */
static unsigned int vendor_caps(unsigned int off_by_type[16])
{
	unsigned int n = 0, guard = 0;
	unsigned int ptr = pci_cfg_read_val(&vp->fn, PCI_CAPABILITY_LIST, 1);

	memset(off_by_type, 0, 16 * sizeof(off_by_type[0]));
	while (ptr) {
		cr_assert_lt(guard++, 48, "capability list loops");
		cr_assert_geq(ptr, PCI_CAP_START);
		if (pci_cfg_read_val(&vp->fn, ptr, 1) == PCI_CAP_ID_VNDR) {
			unsigned int type = pci_cfg_read_val(
			    &vp->fn, ptr + offsetof(struct virtio_pci_cap, cfg_type), 1);
			cr_assert_lt(type, 16);
			cr_assert_eq(off_by_type[type], 0, "two capabilities of type %u", type);
			off_by_type[type] = ptr;
			n++;
		}
		ptr = pci_cfg_read_val(&vp->fn, ptr + 1, 1);
	}
	return n;
}

static void expect_cap(unsigned int off, unsigned int len, uint32_t offset, uint32_t min_length,
		       uint32_t max_length)
{
	uint32_t length;

	cr_assert_neq(off, 0);
	cr_assert_geq(pci_cfg_read_val(&vp->fn, off + offsetof(struct virtio_pci_cap, cap_len), 1),
		      len);
	cr_assert_eq(pci_cfg_read_val(&vp->fn, off + offsetof(struct virtio_pci_cap, bar), 1), 0);
	cr_assert_eq(pci_cfg_read_val(&vp->fn, off + offsetof(struct virtio_pci_cap, offset), 4),
		     offset);
	length = pci_cfg_read_val(&vp->fn, off + offsetof(struct virtio_pci_cap, length), 4);
	cr_assert_geq(length, min_length);
	cr_assert_leq(length, max_length);
	cr_assert_leq((uint64_t)offset + length, VPCI_BAR_SIZE);
}

/* ---- identity and capabilities ---- */

Test(virtio_pci, ids_are_modern_virtio)
{
	cr_assert_eq(pci_cfg_read_val(&vp->fn, PCI_VENDOR_ID, 2), 0x1af4);
	cr_assert_eq(pci_cfg_read_val(&vp->fn, PCI_DEVICE_ID, 2), 0x1040 + FAKE_ID);
	cr_assert_eq(pci_cfg_read_val(&vp->fn, PCI_REVISION_ID, 1), 1);
	cr_assert_eq(pci_cfg_read_val(&vp->fn, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	cr_assert_eq(pci_cfg_read_val(&vp->fn, PCI_INTERRUPT_PIN, 1), 1);
	cr_assert(pci_cfg_read_val(&vp->fn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
}

Test(virtio_pci, bar0_is_64bit_memory_of_the_layout_size)
{
	uint32_t lo = pci_cfg_read_val(&vp->fn, PCI_BASE_ADDRESS_0, 4);

	cr_assert_eq(lo & PCI_BASE_ADDRESS_SPACE, PCI_BASE_ADDRESS_SPACE_MEMORY);
	cr_assert_eq(lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK, PCI_BASE_ADDRESS_MEM_TYPE_64);
	cr_assert_eq(vp->fn.bars[0].size, VPCI_BAR_SIZE);
	/* Sizing as firmware does it: all ones, read back the mask. */
	enable_memory(false);
	pci_cfg_write_val(&vp->fn, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	lo = pci_cfg_read_val(&vp->fn, PCI_BASE_ADDRESS_0, 4) & PCI_BASE_ADDRESS_MEM_MASK;
	cr_assert_eq(~lo + 1, VPCI_BAR_SIZE);
}

Test(virtio_pci, vendor_capabilities_point_into_bar0)
{
	unsigned int caps[16];
	unsigned int n = vendor_caps(caps), notify;

	cr_assert_eq(n, 5);
	expect_cap(caps[VIRTIO_PCI_CAP_COMMON_CFG], sizeof(struct virtio_pci_cap), VPCI_COMMON_OFF,
		   sizeof(struct virtio_pci_common_cfg), VPCI_REGION_SIZE);
	expect_cap(caps[VIRTIO_PCI_CAP_ISR_CFG], sizeof(struct virtio_pci_cap), VPCI_ISR_OFF, 1,
		   VPCI_REGION_SIZE);
	expect_cap(caps[VIRTIO_PCI_CAP_DEVICE_CFG], sizeof(struct virtio_pci_cap), VPCI_DEVICE_OFF,
		   CFG_LEN, CFG_LEN);
	/* Notify: queue_notify_off (q) * multiplier + 2 must fit for every queue. */
	notify = caps[VIRTIO_PCI_CAP_NOTIFY_CFG];
	expect_cap(notify, sizeof(struct virtio_pci_notify_cap), VPCI_NOTIFY_OFF,
		   (NQ - 1) * VPCI_NOTIFY_MULT + 2, VPCI_REGION_SIZE);
	cr_assert_eq(
	    pci_cfg_read_val(
		&vp->fn, notify + offsetof(struct virtio_pci_notify_cap, notify_off_multiplier), 4),
	    VPCI_NOTIFY_MULT);
	cr_assert_neq(caps[VIRTIO_PCI_CAP_PCI_CFG], 0);
	cr_assert_geq(pci_cfg_read_val(&vp->fn,
				       caps[VIRTIO_PCI_CAP_PCI_CFG] +
					   offsetof(struct virtio_pci_cap, cap_len),
				       1),
		      sizeof(struct virtio_pci_cfg_cap));
	cr_assert_eq(caps[VIRTIO_PCI_CAP_PCI_CFG], vp->cfg_window_cap);
}

Test(virtio_pci, msix_capability_has_one_vector_per_queue_plus_config)
{
	unsigned int cap = msix_cap();
	uint32_t ctrl = pci_cfg_read_val(&vp->fn, cap + PCI_MSIX_FLAGS, 2);
	uint32_t table = pci_cfg_read_val(&vp->fn, cap + PCI_MSIX_TABLE, 4);
	uint32_t pba = pci_cfg_read_val(&vp->fn, cap + PCI_MSIX_PBA, 4);

	cr_assert_eq((ctrl & PCI_MSIX_FLAGS_QSIZE) + 1, NQ + 1);
	cr_assert_eq(ctrl & PCI_MSIX_FLAGS_ENABLE, 0);
	cr_assert_eq(table & PCI_MSIX_TABLE_BIR, 0);
	cr_assert_eq(table & PCI_MSIX_TABLE_OFFSET, VPCI_MSIX_TABLE_OFF);
	cr_assert_eq(pba & PCI_MSIX_PBA_BIR, 0);
	cr_assert_eq(pba & PCI_MSIX_PBA_OFFSET, VPCI_MSIX_PBA_OFF);
	cr_assert_eq(vp->nr_vectors, NQ + 1);
	/* One GSI route per vector, each with its own eventfd; all start masked, so no irqfd
	 * is attached yet. */
	cr_assert_eq(nr_route_adds, NQ + 1);
	for (unsigned int i = 0; i < nr_route_adds; i++)
		cr_assert_eq(route_devids[i], TEST_DEVID, "every route carries the requester ID");
	for (unsigned int i = 0; i < NQ + 1; i++) {
		cr_assert_eq(vp->vectors[i].gsi, FIRST_GSI + i);
		cr_assert_geq(vp->vectors[i].masked_poll.fd, 0);
		cr_assert_eq(irqfd_of[FIRST_GSI + i], -1);
	}
}

/* ---- features ---- */

Test(virtio_pci, device_features_offer_version_1_and_the_device_bits)
{
	CW(device_feature_select, 0);
	cr_assert_eq(CR(device_feature), (uint32_t)HOST_FEATURES);
	CW(device_feature_select, 1);
	cr_assert_eq(CR(device_feature), (uint32_t)((HOST_FEATURES | VERSION_1) >> 32));
	cr_assert(CR(device_feature) & 1, "VIRTIO_F_VERSION_1 (bit 32) not offered");
	cr_assert_eq(CR(device_feature_select), 1);
	CW(device_feature_select, 2);
	cr_assert_eq(CR(device_feature), 0);
	cr_assert_eq(device_features(), HOST_FEATURES | VERSION_1);
}

Test(virtio_pci, features_ok_sticks_for_a_valid_subset)
{
	uint64_t want = VERSION_1 | (1ULL << VIRTIO_RING_F_EVENT_IDX);

	cr_assert_eq(negotiate(want), S_ACK | S_DRV | S_FOK);
	cr_assert_eq(read_guest_features(), want);
	cr_assert_eq(dev.guest_features, want);
}

Test(virtio_pci, features_ok_refused_without_version_1)
{
	cr_assert_eq(negotiate(HOST_FEATURES), S_ACK | S_DRV);
	cr_assert_eq(CR(device_status) & S_FOK, 0);
}

Test(virtio_pci, features_ok_refused_with_a_bit_not_offered)
{
	cr_assert_eq(negotiate(VERSION_1 | (1ULL << 4)), S_ACK | S_DRV);
	cr_assert_eq(negotiate(VERSION_1 | (1ULL << 40)), S_ACK | S_DRV);
	/* A fixed feature set is then accepted. */
	cr_assert_eq(negotiate(VERSION_1 | (1ULL << 3)), S_ACK | S_DRV | S_FOK);
}

Test(virtio_pci, guest_features_frozen_after_features_ok)
{
	uint64_t want = VERSION_1 | (1ULL << 3);

	cr_assert_eq(negotiate(want), S_ACK | S_DRV | S_FOK);
	write_guest_features(VERSION_1 | HOST_FEATURES);
	cr_assert_eq(read_guest_features(), want);
	cr_assert_eq(dev.guest_features, want);
}

/* ---- device status ---- */

Test(virtio_pci, driver_ok_activates_once)
{
	bring_up();
	CW(device_status, S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(activates, 1);
	cr_assert_eq(CR(device_status), S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(resets, 0);
}

Test(virtio_pci, driver_ok_without_features_ok_needs_reset)
{
	CW(device_status, S_ACK);
	CW(device_status, S_ACK | S_DRV);
	CW(device_status, S_ACK | S_DRV | S_DOK);
	cr_assert_eq(activates, 0);
	cr_assert(CR(device_status) & S_NR);
}

Test(virtio_pci, driver_ok_after_refused_features_needs_reset)
{
	cr_assert_eq(negotiate(VERSION_1 | (1ULL << 4)), S_ACK | S_DRV);
	CW(device_status, S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(activates, 0);
	cr_assert(CR(device_status) & S_NR);
}

Test(virtio_pci, failed_activate_needs_reset)
{
	activate_result = -1;
	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	CW(device_status, S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(activates, 1);
	cr_assert(CR(device_status) & S_NR);
	/* NEEDS_RESET is announced with a config interrupt (INTx here: MSI-X is off). */
	cr_assert(vp->isr & VIRTIO_PCI_ISR_CONFIG);
}

/* ---- queues ---- */

Test(virtio_pci, queue_registers_after_reset)
{
	cr_assert_eq(CR(num_queues), NQ);
	cr_assert_eq(CR(msix_config), VIRTIO_MSI_NO_VECTOR);
	for (uint16_t q = 0; q < NQ; q++) {
		CW(queue_select, q);
		cr_assert_eq(CR(queue_select), q);
		cr_assert_eq(CR(queue_size), QMAX);
		cr_assert_eq(CR(queue_notify_off), q);
		cr_assert_eq(CR(queue_enable), 0);
		cr_assert_eq(CR(queue_msix_vector), VIRTIO_MSI_NO_VECTOR);
		cr_assert_eq(CR(queue_desc_lo), 0);
		cr_assert_eq(CR(queue_used_hi), 0);
	}
}

Test(virtio_pci, ring_address_halves_read_back)
{
	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	CW(queue_select, 1);
	CW(queue_size, 64);
	CW(queue_desc_lo, 0x12345000);
	CW(queue_desc_hi, 0x9);
	CW(queue_avail_lo, 0x23456000);
	CW(queue_avail_hi, 0xa);
	CW(queue_used_lo, 0x34567000);
	CW(queue_used_hi, 0xb);
	cr_assert_eq(CR(queue_size), 64);
	cr_assert_eq(CR(queue_desc_lo), 0x12345000);
	cr_assert_eq(CR(queue_desc_hi), 0x9);
	cr_assert_eq(CR(queue_avail_lo), 0x23456000);
	cr_assert_eq(CR(queue_avail_hi), 0xa);
	cr_assert_eq(CR(queue_used_lo), 0x34567000);
	cr_assert_eq(CR(queue_used_hi), 0xb);
	cr_assert_eq(vp->core.queues[1].desc, 0x912345000ULL);
	cr_assert_eq(vp->core.queues[1].avail, 0xa23456000ULL);
	cr_assert_eq(vp->core.queues[1].used, 0xb34567000ULL);
	/* Writing the low half keeps the high half. */
	CW(queue_desc_lo, 0x1000);
	cr_assert_eq(vp->core.queues[1].desc, 0x900001000ULL);
	/* Queue 0 is untouched. */
	CW(queue_select, 0);
	cr_assert_eq(CR(queue_desc_lo), 0);
	cr_assert_eq(CR(queue_size), QMAX);
}

Test(virtio_pci, queue_enable_sets_up_the_virtqueue)
{
	cr_assert_eq(negotiate(VERSION_1 | (1ULL << VIRTIO_RING_F_EVENT_IDX)),
		     S_ACK | S_DRV | S_FOK);
	program_queue(1, 128, DESC(1), AVAIL(1), USED(1));
	cr_assert_not(dev.vqs[1].ready);
	CW(queue_enable, 1);
	cr_assert_eq(CR(queue_enable), 1);
	cr_assert(dev.vqs[1].ready);
	cr_assert_eq(dev.vqs[1].size, 128);
	cr_assert_eq(dev.vqs[1].desc_gpa, DESC(1));
	cr_assert_eq(dev.vqs[1].avail_gpa, AVAIL(1));
	cr_assert_eq(dev.vqs[1].used_gpa, USED(1));
	cr_assert(dev.vqs[1].event_idx);
	cr_assert_not(dev.vqs[1].indirect);
	cr_assert_not(dev.vqs[0].ready);
	cr_assert_eq(CR(device_status) & S_NR, 0);
}

Test(virtio_pci, queue_enable_with_rings_outside_ram_needs_reset)
{
	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	/* The used ring 4 GiB up, where there is no RAM. */
	program_queue(0, QMAX, DESC(0), AVAIL(0), USED(0) | (1ULL << 32));
	CW(queue_enable, 1);
	cr_assert_eq(CR(queue_enable), 0);
	cr_assert_not(dev.vqs[0].ready);
	cr_assert(CR(device_status) & S_NR);
}

Test(virtio_pci, queue_enable_past_the_end_of_ram_needs_reset)
{
	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	/* The table starts in RAM and runs off its end. */
	program_queue(0, QMAX, RAM_SIZE - 0x800, AVAIL(0), USED(0));
	CW(queue_enable, 1);
	cr_assert_eq(CR(queue_enable), 0);
	cr_assert_not(dev.vqs[0].ready);
	cr_assert(CR(device_status) & S_NR);
}

Test(virtio_pci, queue_enable_with_bad_size_needs_reset)
{
	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	program_queue(0, 100, DESC(0), AVAIL(0), USED(0));
	CW(queue_enable, 1);
	cr_assert_eq(CR(queue_enable), 0);
	cr_assert_not(dev.vqs[0].ready);
	cr_assert(CR(device_status) & S_NR);
}

Test(virtio_pci, ring_fields_frozen_while_enabled)
{
	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	enable_queue(0);
	CW(queue_size, 16);
	CW(queue_desc_lo, 0x80000);
	CW(queue_desc_hi, 1);
	CW(queue_avail_lo, 0x81000);
	CW(queue_used_lo, 0x82000);
	CW(queue_used_hi, 2);
	cr_assert_eq(CR(queue_size), QMAX);
	cr_assert_eq(CR(queue_desc_lo), DESC(0));
	cr_assert_eq(CR(queue_desc_hi), 0);
	cr_assert_eq(CR(queue_avail_lo), AVAIL(0));
	cr_assert_eq(CR(queue_used_lo), USED(0));
	cr_assert_eq(CR(queue_used_hi), 0);
	/* Writing 0 to queue_enable does not disable it either. */
	CW(queue_enable, 0);
	cr_assert_eq(CR(queue_enable), 1);
	cr_assert(dev.vqs[0].ready);
	cr_assert_eq(dev.vqs[0].desc_gpa, DESC(0));
	cr_assert_eq(dev.vqs[0].size, QMAX);
}

Test(virtio_pci, queue_select_out_of_range_reads_zero)
{
	CW(queue_select, NQ);
	cr_assert_eq(CR(queue_select), NQ);
	CW(queue_size, 16);
	CW(queue_desc_lo, 0x1000);
	CW(queue_msix_vector, 0);
	CW(queue_enable, 1);
	cr_assert_eq(CR(queue_size), 0);
	cr_assert_eq(CR(queue_msix_vector), 0);
	cr_assert_eq(CR(queue_enable), 0);
	cr_assert_eq(CR(queue_notify_off), 0);
	cr_assert_eq(CR(queue_desc_lo), 0);
	CW(queue_select, 0xffff);
	cr_assert_eq(CR(queue_size), 0);
	/* Nothing leaked into the real queues. */
	for (uint16_t q = 0; q < NQ; q++) {
		CW(queue_select, q);
		cr_assert_eq(CR(queue_size), QMAX);
		cr_assert_eq(CR(queue_desc_lo), 0);
		cr_assert_eq(CR(queue_msix_vector), VIRTIO_MSI_NO_VECTOR);
		cr_assert_eq(CR(queue_enable), 0);
	}
	cr_assert_eq(CR(device_status) & S_NR, 0);
}

Test(virtio_pci, common_region_ignores_wide_and_stray_accesses)
{
	cr_assert_eq(bar_read(VPCI_COMMON_OFF + sizeof(struct virtio_pci_common_cfg), 4), 0);
	cr_assert_eq(bar_read(VPCI_COMMON_OFF + 0x800, 4), 0);
	bar_write(VPCI_COMMON_OFF + CC(device_status), 8, S_ACK);
	cr_assert_eq(CR(device_status), 0);
}

/* ---- reset ---- */

Test(virtio_pci, status_zero_resets_everything)
{
	msix_enable(true);
	bring_up();
	CW(msix_config, 0);
	for (uint16_t q = 0; q < NQ; q++) {
		CW(queue_select, q);
		CW(queue_msix_vector, q + 1);
	}
	CW(queue_select, 1);
	cr_assert(dev.vqs[0].ready && dev.vqs[1].ready);

	CW(device_status, 0);
	cr_assert_eq(resets, 1);
	cr_assert_eq(CR(device_status), 0);
	cr_assert_eq(read_guest_features(), 0);
	cr_assert_eq(dev.guest_features, 0);
	cr_assert_eq(CR(msix_config), VIRTIO_MSI_NO_VECTOR);
	cr_assert_eq(CR(queue_select), 0);
	for (uint16_t q = 0; q < NQ; q++) {
		CW(queue_select, q);
		cr_assert_eq(CR(queue_enable), 0);
		cr_assert_eq(CR(queue_size), QMAX);
		cr_assert_eq(CR(queue_msix_vector), VIRTIO_MSI_NO_VECTOR);
		cr_assert_eq(CR(queue_desc_lo), 0);
		cr_assert_eq(CR(queue_avail_lo), 0);
		cr_assert_eq(CR(queue_used_lo), 0);
		cr_assert_not(dev.vqs[q].ready);
		cr_assert_eq(dev.vqs[q].size, 0);
	}
	/* A new driver can start over. */
	bring_up();
	cr_assert_eq(activates, 2);
}

Test(virtio_pci, reset_clears_needs_reset_and_isr)
{
	CW(device_status, S_ACK | S_DRV | S_DOK);
	cr_assert(CR(device_status) & S_NR);
	dev.transport->signal_queue(&dev, 0);
	cr_assert_eq(intx_level, 1);
	CW(device_status, 0);
	cr_assert_eq(CR(device_status), 0);
	cr_assert_eq(vp->isr, 0);
	cr_assert_eq(intx_level, 0);
	cr_assert_eq(resets, 1);
}

/* ---- kicks ---- */

Test(virtio_pci, notify_write_signals_the_queue_kick_eventfd)
{
	for (uint16_t q = 0; q < NQ; q++) {
		bar_write(VPCI_NOTIFY_OFF + q * VPCI_NOTIFY_MULT, 2, q);
		cr_assert_eq(read_efd(vp->core.kicks[q].h.fd), 1, "queue %u", q);
		cr_assert_eq(read_efd(vp->core.kicks[1 - q].h.fd), 0, "queue %u", 1 - q);
	}
	/* Past the last queue: nothing. */
	bar_write(VPCI_NOTIFY_OFF + NQ * VPCI_NOTIFY_MULT, 2, NQ);
	for (uint16_t q = 0; q < NQ; q++)
		cr_assert_eq(read_efd(vp->core.kicks[q].h.fd), 0);
	cr_assert_eq(bar_read(VPCI_NOTIFY_OFF, 2), 0);
}

static void kick_and_run(uint16_t q)
{
	bar_write(VPCI_NOTIFY_OFF + q * VPCI_NOTIFY_MULT, 2, q);
	vp->core.kicks[q].h.fn(vp->core.kicks[q].h.opaque, EPOLLIN);
}

Test(virtio_pci, kicks_reach_the_device_only_after_driver_ok)
{
	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	enable_queue(0);
	enable_queue(1);
	kick_and_run(1);
	cr_assert_eq(notifies[1], 0);
	/* The eventfd was consumed all the same. */
	cr_assert_eq(read_efd(vp->core.kicks[1].h.fd), 0);

	CW(device_status, S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(activates, 1);
	memset(notifies, 0, sizeof(notifies));
	kick_and_run(1);
	cr_assert_eq(notifies[1], 1);
	cr_assert_eq(notifies[0], 0);
	kick_and_run(0);
	cr_assert_eq(notifies[0], 1);
	cr_assert_eq(notifies[1], 1);
}

Test(virtio_pci, activation_looks_at_ready_queues_for_early_kicks)
{
	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	enable_queue(1);
	CW(device_status, S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(notifies[1], 1);
	cr_assert_eq(notifies[0], 0);
}

Test(virtio_pci, kicks_ignored_once_needs_reset)
{
	bring_up();
	memset(notifies, 0, sizeof(notifies));
	dev.transport->needs_reset(&dev);
	cr_assert(CR(device_status) & S_NR);
	kick_and_run(0);
	cr_assert_eq(notifies[0], 0);
}

Test(virtio_pci, kick_on_a_queue_that_is_not_enabled_is_ignored)
{
	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	enable_queue(0);
	CW(device_status, S_ACK | S_DRV | S_FOK | S_DOK);
	memset(notifies, 0, sizeof(notifies));
	kick_and_run(1);
	cr_assert_eq(notifies[1], 0);
}

static bool find_ioefd(unsigned int from, int efd, uint64_t addr, bool assign)
{
	for (unsigned int i = from; i < nr_ioefds; i++)
		if (ioefds[i].efd == efd && ioefds[i].addr == addr && ioefds[i].assign == assign)
			return true;
	return false;
}

Test(virtio_pci, ioeventfds_follow_the_bar)
{
	uint64_t old = bar_base, moved = bar_base + 0x100000;
	unsigned int mark;

	/* Enabling memory decoding in setup bound one ioeventfd per queue. */
	cr_assert_eq(nr_ioefds, NQ);
	for (uint16_t q = 0; q < NQ; q++)
		cr_assert(find_ioefd(0, vp->core.kicks[q].h.fd,
				     old + VPCI_NOTIFY_OFF + q * VPCI_NOTIFY_MULT, true),
			  "queue %u not bound", q);
	cr_assert_eq(vp->notify_base, old);

	/* Moved while decoding: unbind at the old address, bind at the new one. */
	mark = nr_ioefds;
	pci_cfg_write_val(&vp->fn, PCI_BASE_ADDRESS_0, 4, (uint32_t)moved);
	cr_assert_eq(pci_bar_mapped(&vp->fn, 0), moved);
	cr_assert_eq(nr_ioefds, mark + 2 * NQ);
	for (uint16_t q = 0; q < NQ; q++) {
		cr_assert(find_ioefd(mark, vp->core.kicks[q].h.fd,
				     old + VPCI_NOTIFY_OFF + q * VPCI_NOTIFY_MULT, false));
		cr_assert(find_ioefd(mark, vp->core.kicks[q].h.fd,
				     moved + VPCI_NOTIFY_OFF + q * VPCI_NOTIFY_MULT, true));
	}
	cr_assert_eq(vp->notify_base, moved);
	/* The old ones go before the new ones are bound (KVM rejects duplicates otherwise). */
	cr_assert_not(ioefds[mark].assign);

	/* Decoding off: unbound, nothing bound. */
	mark = nr_ioefds;
	enable_memory(false);
	cr_assert_eq(nr_ioefds, mark + NQ);
	for (uint16_t q = 0; q < NQ; q++)
		cr_assert(find_ioefd(mark, vp->core.kicks[q].h.fd,
				     moved + VPCI_NOTIFY_OFF + q * VPCI_NOTIFY_MULT, false));
	cr_assert_eq(vp->notify_base, PCI_BAR_UNMAPPED);

	/* Moved while not decoding: nothing to do until decoding is back. */
	mark = nr_ioefds;
	pci_cfg_write_val(&vp->fn, PCI_BASE_ADDRESS_0, 4, (uint32_t)old);
	cr_assert_eq(nr_ioefds, mark);
	enable_memory(true);
	cr_assert_eq(nr_ioefds, mark + NQ);
	for (uint16_t q = 0; q < NQ; q++)
		cr_assert(find_ioefd(mark, vp->core.kicks[q].h.fd,
				     old + VPCI_NOTIFY_OFF + q * VPCI_NOTIFY_MULT, true));
}

Test(virtio_pci, destroy_unbinds_the_ioeventfds)
{
	unsigned int mark = nr_ioefds;
	int fds[NQ];

	for (uint16_t q = 0; q < NQ; q++)
		fds[q] = vp->core.kicks[q].h.fd;
	virtio_pci_destroy(vp);
	vp = NULL;
	cr_assert_eq(nr_ioefds, mark + NQ);
	for (uint16_t q = 0; q < NQ; q++)
		cr_assert(find_ioefd(mark, fds[q],
				     bar_base + VPCI_NOTIFY_OFF + q * VPCI_NOTIFY_MULT, false));
}

/* ---- interrupts ---- */

Test(virtio_pci, intx_queue_interrupt_and_isr_read_acknowledges)
{
	bring_up();
	cr_assert_eq(intx_level, 0);
	dev.transport->signal_queue(&dev, 1);
	cr_assert_eq(intx_level, 1);
	cr_assert(pci_cfg_read_val(&vp->fn, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	cr_assert_eq(bar_read(VPCI_ISR_OFF, 1), ISR_QUEUE);
	cr_assert_eq(intx_level, 0);
	cr_assert_eq(bar_read(VPCI_ISR_OFF, 1), 0);
	cr_assert_eq(intx_level, 0);
	/* No MSI-X vector was used. */
	for (unsigned int v = 0; v < vp->nr_vectors; v++)
		cr_assert_eq(read_efd(vp->vectors[v].masked_poll.fd), 0);
}

Test(virtio_pci, intx_config_interrupt_bumps_generation)
{
	uint8_t gen = (uint8_t)CR(config_generation);

	dev.transport->signal_config(&dev);
	cr_assert_eq(intx_level, 1);
	cr_assert_eq((uint8_t)CR(config_generation), (uint8_t)(gen + 1));
	dev.transport->signal_queue(&dev, 0);
	/* A 4-byte read of the ISR works too: both causes, then cleared. */
	cr_assert_eq(bar_read(VPCI_ISR_OFF, 4), VIRTIO_PCI_ISR_CONFIG | ISR_QUEUE);
	cr_assert_eq(intx_level, 0);
	cr_assert_eq(bar_read(VPCI_ISR_OFF, 1), 0);
}

Test(virtio_pci, needs_reset_after_driver_ok_sends_config_interrupt)
{
	bring_up();
	dev.transport->needs_reset(&dev);
	cr_assert(CR(device_status) & S_NR);
	cr_assert_eq(CR(device_status) & ~S_NR, S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(bar_read(VPCI_ISR_OFF, 1), VIRTIO_PCI_ISR_CONFIG);
}

Test(virtio_pci, msix_queue_vector_fires_its_irqfd)
{
	msix_enable(true);
	bring_up();
	msix_program(1, 0xfee01000, 0x4041, false);
	CW(queue_select, 0);
	CW(queue_msix_vector, 1);
	cr_assert_eq(CR(queue_msix_vector), 1);

	dev.transport->signal_queue(&dev, 0);
	cr_assert_eq(read_efd(vp->vectors[1].masked_poll.fd), 1);
	cr_assert_eq(read_efd(vp->vectors[0].masked_poll.fd), 0);
	cr_assert_eq(read_efd(vp->vectors[2].masked_poll.fd), 0);
	cr_assert_eq(vp->isr, 0);
	cr_assert_eq(intx_level, 0);
	cr_assert_eq(bar_read(VPCI_ISR_OFF, 1), 0);

	/* Queue 1 has no vector: with MSI-X on it raises nothing at all. */
	dev.transport->signal_queue(&dev, 1);
	for (unsigned int v = 0; v < vp->nr_vectors; v++)
		cr_assert_eq(read_efd(vp->vectors[v].masked_poll.fd), 0);
	cr_assert_eq(vp->isr, 0);
	cr_assert_eq(intx_level, 0);
}

Test(virtio_pci, msix_route_gets_the_programmed_message)
{
	msix_enable(true);
	msix_program(2, 0xfee02000, 0x4062, true);
	/* Masked: no route needed yet; unmasking programs it. */
	for (unsigned int i = 0; i < nr_route_sets; i++)
		cr_assert_neq(route_sets[i].gsi, vp->vectors[2].gsi);
	bar_write(VPCI_MSIX_TABLE_OFF + 2 * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	cr_assert_geq(nr_route_sets, 1);
	cr_assert_eq(route_sets[nr_route_sets - 1].gsi, vp->vectors[2].gsi);
	cr_assert_eq(route_sets[nr_route_sets - 1].gsi, FIRST_GSI + 2);
	cr_assert_eq(route_sets[nr_route_sets - 1].addr, 0xfee02000);
	cr_assert_eq(route_sets[nr_route_sets - 1].data, 0x4062);

	/* Reprogrammed while unmasked: the route follows. */
	bar_write(VPCI_MSIX_TABLE_OFF + 2 * 16 + PCI_MSIX_ENTRY_DATA, 4, 0x4063);
	cr_assert_eq(route_sets[nr_route_sets - 1].gsi, FIRST_GSI + 2);
	cr_assert_eq(route_sets[nr_route_sets - 1].data, 0x4063);
	cr_assert_eq(route_sets[nr_route_sets - 1].addr, 0xfee02000);
}

Test(virtio_pci, msix_masked_vector_is_pending_until_unmasked)
{
	msix_enable(true);
	bring_up();
	msix_program(2, 0xfee00000, 0x4070, true);
	CW(queue_select, 1);
	CW(queue_msix_vector, 2);
	dev.transport->signal_queue(&dev, 1);
	cr_assert_eq(read_efd(vp->vectors[2].masked_poll.fd), 0);
	cr_assert_eq(bar_read(VPCI_MSIX_PBA_OFF, 8), 1ULL << 2);
	bar_write(VPCI_MSIX_TABLE_OFF + 2 * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	cr_assert_eq(read_efd(vp->vectors[2].masked_poll.fd), 1);
	cr_assert_eq(bar_read(VPCI_MSIX_PBA_OFF, 8), 0);
	cr_assert_eq(intx_level, 0);
}

Test(virtio_pci, msix_config_vector_used_for_config_changes)
{
	uint8_t gen = (uint8_t)CR(config_generation);

	msix_enable(true);
	msix_program(0, 0xfee00000, 0x4050, false);
	CW(msix_config, 0);
	cr_assert_eq(CR(msix_config), 0);
	dev.transport->signal_config(&dev);
	cr_assert_eq(read_efd(vp->vectors[0].masked_poll.fd), 1);
	cr_assert_eq(read_efd(vp->vectors[1].masked_poll.fd), 0);
	cr_assert_eq(vp->isr, 0);
	cr_assert_eq(intx_level, 0);
	cr_assert_eq((uint8_t)CR(config_generation), (uint8_t)(gen + 1));
}

Test(virtio_pci, vectors_beyond_the_table_read_no_vector)
{
	CW(msix_config, NQ + 1);
	cr_assert_eq(CR(msix_config), VIRTIO_MSI_NO_VECTOR);
	CW(msix_config, NQ);
	cr_assert_eq(CR(msix_config), NQ);
	CW(queue_select, 1);
	CW(queue_msix_vector, NQ + 1);
	cr_assert_eq(CR(queue_msix_vector), VIRTIO_MSI_NO_VECTOR);
	CW(queue_msix_vector, 0x7ff);
	cr_assert_eq(CR(queue_msix_vector), VIRTIO_MSI_NO_VECTOR);
	CW(queue_msix_vector, NQ);
	cr_assert_eq(CR(queue_msix_vector), NQ);
	CW(queue_msix_vector, VIRTIO_MSI_NO_VECTOR);
	cr_assert_eq(CR(queue_msix_vector), VIRTIO_MSI_NO_VECTOR);
}

Test(virtio_pci, msix_disabled_falls_back_to_intx_even_with_vectors)
{
	msix_enable(true);
	bring_up();
	msix_program(1, 0xfee00000, 0x4041, false);
	CW(queue_select, 0);
	CW(queue_msix_vector, 1);
	msix_enable(false);
	dev.transport->signal_queue(&dev, 0);
	cr_assert_eq(read_efd(vp->vectors[1].masked_poll.fd), 0);
	cr_assert_eq(intx_level, 1);
	cr_assert_eq(bar_read(VPCI_ISR_OFF, 1), ISR_QUEUE);
}

Test(virtio_pci, vector_change_after_driver_ok_tells_the_device)
{
	CW(queue_select, 0);
	CW(queue_msix_vector, 1);
	drain_loop();
	cr_assert_eq(irq_changes[0] + irq_changes[1], 0);

	msix_enable(true);
	bring_up();
	CW(queue_select, 1);
	CW(queue_msix_vector, 2);
	drain_loop();
	cr_assert_geq(irq_changes[1], 1);
	cr_assert_eq(vp->queue_vector[1], 2);
}

/* ---- device configuration ---- */

Test(virtio_pci, device_config_reaches_the_device)
{
	cr_assert_eq(bar_read(VPCI_DEVICE_OFF + 4, 4), 0xa7a6a5a4);
	cr_assert_eq(config_reads, 1);
	cr_assert_eq(last_cfg_off, 4);
	cr_assert_eq(last_cfg_len, 4);
	cr_assert_eq(bar_read(VPCI_DEVICE_OFF + 1, 1), 0xa1);
	cr_assert_eq(last_cfg_off, 1);
	cr_assert_eq(last_cfg_len, 1);
	cr_assert_eq(bar_read(VPCI_DEVICE_OFF, 8), 0xa7a6a5a4a3a2a1a0ULL);
	cr_assert_eq(last_cfg_len, 8);

	bar_write(VPCI_DEVICE_OFF + 2, 2, 0xbeef);
	cr_assert_eq(config_writes, 1);
	cr_assert_eq(last_cfg_off, 2);
	cr_assert_eq(last_cfg_len, 2);
	cr_assert_eq(last_cfg_data[0], 0xef);
	cr_assert_eq(last_cfg_data[1], 0xbe);
}

Test(virtio_pci, device_config_beyond_its_length_reads_zero)
{
	cr_assert_eq(bar_read(VPCI_DEVICE_OFF + CFG_LEN, 4), 0);
	cr_assert_eq(bar_read(VPCI_DEVICE_OFF + CFG_LEN - 2, 4), 0);
	cr_assert_eq(bar_read(VPCI_DEVICE_OFF + 0x800, 1), 0);
	cr_assert_eq(config_reads, 0);
	bar_write(VPCI_DEVICE_OFF + CFG_LEN, 4, 0x12345678);
	bar_write(VPCI_DEVICE_OFF + CFG_LEN - 1, 2, 0x1234);
	cr_assert_eq(config_writes, 0);
}

/* ---- VIRTIO_PCI_CAP_PCI_CFG window ---- */

static void window_set(uint32_t offset, uint32_t length)
{
	unsigned int cap = vp->cfg_window_cap;

	pci_cfg_write_val(&vp->fn, cap + offsetof(struct virtio_pci_cap, bar), 1, 0);
	pci_cfg_write_val(&vp->fn, cap + offsetof(struct virtio_pci_cap, offset), 4, offset);
	pci_cfg_write_val(&vp->fn, cap + offsetof(struct virtio_pci_cap, length), 4, length);
}

static uint32_t window_read(unsigned int size)
{
	return pci_cfg_read_val(
	    &vp->fn, vp->cfg_window_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data), size);
}

static void window_write(unsigned int size, uint32_t v)
{
	pci_cfg_write_val(&vp->fn,
			  vp->cfg_window_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data),
			  size, v);
}

Test(virtio_pci, pci_cfg_window_reads_and_writes_bar0)
{
	CW(device_status, S_ACK | S_DRV);
	window_set(VPCI_COMMON_OFF + CC(device_status), 1);
	cr_assert_eq(pci_cfg_read_val(
			 &vp->fn, vp->cfg_window_cap + offsetof(struct virtio_pci_cap, offset), 4),
		     CC(device_status));
	cr_assert_eq(window_read(1), S_ACK | S_DRV);
	cr_assert_eq(window_read(4) & 0xff, S_ACK | S_DRV);

	/* A driver negotiating through the window. */
	window_set(VPCI_COMMON_OFF + CC(device_feature_select), 4);
	window_write(4, 1);
	window_set(VPCI_COMMON_OFF + CC(device_feature), 4);
	cr_assert_eq(window_read(4), (uint32_t)((HOST_FEATURES | VERSION_1) >> 32));
	window_set(VPCI_COMMON_OFF + CC(guest_feature_select), 4);
	window_write(4, 1);
	window_set(VPCI_COMMON_OFF + CC(guest_feature), 4);
	window_write(4, 1);
	cr_assert_eq(window_read(4), 1);
	window_set(VPCI_COMMON_OFF + CC(device_status), 1);
	window_write(1, S_ACK | S_DRV | S_FOK);
	cr_assert_eq(CR(device_status), S_ACK | S_DRV | S_FOK);
	cr_assert_eq(dev.guest_features, VERSION_1);
	cr_assert_eq(window_read(1), S_ACK | S_DRV | S_FOK);

	/* Device config through the window. */
	window_set(VPCI_DEVICE_OFF + 4, 2);
	cr_assert_eq(window_read(2), 0xa5a4);
	cr_assert_eq(last_cfg_off, 4);
	cr_assert_eq(last_cfg_len, 2);
}

Test(virtio_pci, pci_cfg_window_reset_is_carried_out)
{
	bring_up();
	window_set(VPCI_COMMON_OFF + CC(device_status), 1);
	window_write(1, 0);
	/* Done when the write returns, as through the BAR: the window holds no lock. */
	cr_assert_eq(CR(device_status), 0);
	cr_assert_eq(resets, 1);
	cr_assert_not(dev.vqs[0].ready);
	cr_assert_not(dev.vqs[1].ready);
}

Test(virtio_pci, pci_cfg_window_isr_read_acknowledges_like_the_bar)
{
	dev.transport->signal_queue(&dev, 0);
	window_set(VPCI_ISR_OFF, 1);
	cr_assert_eq(window_read(1), ISR_QUEUE);
	cr_assert_eq(intx_level, 0);
	cr_assert_eq(bar_read(VPCI_ISR_OFF, 1), 0);
}

Test(virtio_pci, pci_cfg_window_rejects_bad_geometry)
{
	CW(device_status, S_ACK);
	/* Length 3 is not allowed; misaligned offset is not either. */
	window_set(VPCI_COMMON_OFF + CC(device_status), 3);
	window_write(1, S_ACK | S_DRV);
	cr_assert_eq(CR(device_status), S_ACK);
	window_set(VPCI_COMMON_OFF + CC(device_feature) + 1, 2);
	window_write(2, 0);
	cr_assert_eq(CR(device_status), S_ACK);
	/* Another BAR: ignored. */
	window_set(VPCI_COMMON_OFF + CC(device_status), 1);
	pci_cfg_write_val(&vp->fn, vp->cfg_window_cap + offsetof(struct virtio_pci_cap, bar), 1, 2);
	window_write(1, S_ACK | S_DRV);
	cr_assert_eq(CR(device_status), S_ACK);
}

/* ---- issue 7: each bug class a guest could reach, as a regression test ---- */

/* Bug 1: the guest's queue size must fit the device's maximum (net sized state for it). */
Test(virtio_pci, queue_size_above_the_device_maximum_is_refused)
{
	static const uint32_t bad[] = {2 * QMAX, 1024, 0, 3, 2048, 65535};

	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CW(queue_select, 0);
		CW(queue_size, bad[i]);
		cr_assert_eq(CR(queue_size), QMAX, "size %u was taken", bad[i]);
	}
	program_queue(0, 2 * QMAX, DESC(0), AVAIL(0), USED(0));
	CW(queue_enable, 1);
	cr_assert_eq(CR(queue_enable), 0);
	cr_assert_not(dev.vqs[0].ready);
	cr_assert(CR(device_status) & S_NR);
}

Test(virtio_pci, a_smaller_queue_size_is_what_the_device_gets)
{
	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	program_queue(1, 16, DESC(1), AVAIL(1), USED(1));
	CW(queue_enable, 1);
	cr_assert_eq(dev.vqs[1].size, 16);
}

Test(virtio_pci, queues_are_set_up_only_after_features_ok)
{
	CW(device_status, S_ACK | S_DRV);
	program_queue(0, QMAX, DESC(0), AVAIL(0), USED(0));
	CW(queue_enable, 1);
	cr_assert_eq(CR(queue_enable), 0);
	cr_assert_not(dev.vqs[0].ready);
}

/* Bug 2: clearing DRIVER_OK without a reset and setting it again activated twice. */
Test(virtio_pci, driver_ok_cleared_and_set_again_does_not_activate_twice)
{
	bring_up();
	CW(device_status, S_ACK | S_DRV | S_FOK);
	cr_assert_eq(CR(device_status), S_ACK | S_DRV | S_FOK | S_DOK);
	CW(device_status, S_ACK | S_DRV | S_FOK | S_DOK);
	CW(device_status, S_ACK | S_DRV | S_FOK | S_DOK | VIRTIO_CONFIG_S_FAILED);
	cr_assert_eq(activates, 1);
	cr_assert_eq(resets, 0);
}

Test(virtio_pci, features_ok_cleared_does_not_reopen_negotiation)
{
	bring_up();
	CW(device_status, S_ACK | S_DRV);
	write_guest_features(VERSION_1);
	CW(device_status, S_ACK | S_DRV | S_FOK);
	cr_assert_eq(dev.guest_features, VERSION_1 | HOST_FEATURES);
	cr_assert_eq(read_guest_features(), VERSION_1 | HOST_FEATURES);
	cr_assert_eq(activates, 1);
}

Test(virtio_pci, queue_configuration_frozen_after_driver_ok)
{
	bring_up();
	CW(queue_select, 0);
	CW(queue_desc_lo, 0x5000);
	CW(queue_size, 16);
	cr_assert_eq(CR(queue_desc_lo), (uint32_t)DESC(0));
	cr_assert_eq(CR(queue_size), QMAX);
	cr_assert_eq(dev.vqs[0].size, QMAX);
}

Test(virtio_pci, activation_counts_once_per_reset)
{
	for (unsigned int i = 1; i <= 3; i++) {
		bring_up();
		cr_assert_eq(activates, i);
		CW(device_status, 0);
		cr_assert_eq(CR(device_status), 0);
		cr_assert_eq(resets, i);
	}
}

/* Bug 3: an ISR read through the PCI_CFG window took fn.lock then the INTx lock, the
 * opposite of a raised INTx. Two threads doing both must finish (Criterion's timeout). */
static volatile bool stop_raising;

static void *raise_intx(void *arg)
{
	(void)arg;
	while (!stop_raising) {
		dev.transport->signal_queue(&dev, 0);
		bar_read(VPCI_ISR_OFF, 1);
	}
	return NULL;
}

Test(virtio_pci, isr_reads_through_window_and_bar_never_deadlock, .timeout = 20)
{
	pthread_t t;

	stop_raising = false;
	cr_assert_eq(pthread_create(&t, NULL, raise_intx, NULL), 0);
	window_set(VPCI_ISR_OFF, 1);
	for (unsigned int i = 0; i < 200000; i++)
		window_read(1);
	stop_raising = true;
	pthread_join(t, NULL);
}

/* Bug 4: reset is one step. While the device is stopping, status reads non-zero and the
 * queue cannot be set up again under it. */
static void write_during_reset(void)
{
	cr_assert_neq(CR(device_status), 0, "status read 0 before the device stopped");
	CW(queue_select, 0);
	CW(queue_enable, 1);
	CW(device_status, S_ACK);
	cr_assert_eq(CR(queue_enable), 1, "a write was taken while resetting");
}

Test(virtio_pci, writes_during_a_reset_are_ignored)
{
	bring_up();
	during_reset = write_during_reset;
	window_set(VPCI_COMMON_OFF + CC(device_status), 1);
	window_write(1, 0);
	during_reset = NULL;
	cr_assert_eq(resets, 1);
	cr_assert_eq(CR(device_status), 0);
	cr_assert_eq(CR(queue_enable), 0);
	cr_assert_not(dev.vqs[0].ready);
	/* After it, a normal bring-up works. */
	bring_up();
	cr_assert_eq(activates, 2);
}

/* Bug 5a: a masked vector must not interrupt, whoever signals its eventfd (vhost does). */
Test(virtio_pci, masked_vector_signalled_by_vhost_sets_the_pending_bit)
{
	int fd;

	msix_enable(true);
	bring_up();
	msix_program(1, 0xfee00000, 0x4041, false);
	CW(queue_select, 0);
	CW(queue_msix_vector, 1);
	fd = dev.transport->call_fd(&dev, 0);
	cr_assert_eq(fd, vp->vectors[1].masked_poll.fd);
	cr_assert_eq(irqfd_of[vp->vectors[1].gsi], fd, "unmasked: the irqfd is attached");

	bar_write(VPCI_MSIX_TABLE_OFF + 1 * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1);
	cr_assert_eq(irqfd_of[vp->vectors[1].gsi], -1, "masked: the irqfd is detached");
	cr_assert_eq(write(fd, &(uint64_t){1}, 8), 8); /* what vhost does */
	event_loop_run_once(&loop, 0);
	cr_assert_eq(bar_read(VPCI_MSIX_PBA_OFF, 8), 1ULL << 1);
	cr_assert_eq(read_efd(fd), 0, "the signal was consumed, not left for an irqfd");

	bar_write(VPCI_MSIX_TABLE_OFF + 1 * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	cr_assert_eq(irqfd_of[vp->vectors[1].gsi], fd);
	cr_assert_eq(bar_read(VPCI_MSIX_PBA_OFF, 8), 0);
	cr_assert_eq(read_efd(fd), 1, "the pending message fires on unmask");
}

/* Bug 5b: each vector write after DRIVER_OK queued a heap entry, without bound. */
Test(virtio_pci, vector_writes_cannot_grow_the_event_loop_queue)
{
	unsigned int queued = 0;

	msix_enable(true);
	bring_up();
	CW(queue_select, 1);
	for (unsigned int i = 0; i < 100000; i++)
		CW(queue_msix_vector, i & 1);
	for (struct event_work *w = loop.calls; w; w = w->next)
		queued++;
	cr_assert_leq(queued, 1);
	drain_loop();
	cr_assert_geq(irq_changes[1], 1);
}

Test(virtio_pci, features_ok_refused_when_the_device_rejects_the_set)
{
	refused_combo = (1ULL << 3) | (1ULL << 35);
	cr_assert_eq(negotiate(VERSION_1 | (1ULL << 3) | (1ULL << 35)), S_ACK | S_DRV);
	cr_assert_eq(dev.guest_features, 0);
	CW(device_status, 0);
	cr_assert_eq(negotiate(VERSION_1 | (1ULL << 3)), S_ACK | S_DRV | S_FOK);
}

/*
 * Several vCPUs at once: threads hammer random registers (common config at every offset and
 * width, status, queue set-up, ISR, notify, MSI-X table, the PCI_CFG window and the MSI-X
 * capability) while the event loop runs on its own thread. Nothing may crash or deadlock
 * (the timeout), and the device is never activated twice without a reset.
 */
#define STRESS_THREADS 4
#define STRESS_OPS 20000

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void stress_op(uint64_t *rng)
{
	static const unsigned int widths[] = {1, 2, 4, 8};
	uint64_t r = xorshift(rng), v = xorshift(rng);
	unsigned int w = widths[r & 3];
	uint8_t b[8];

	for (unsigned int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	switch ((r >> 2) % 8) {
	case 0: /* any common-config register, any width */
		pci_bus_mmio(&bus, bar_base + ((r >> 8) % 64), b, w, (r >> 16) & 1);
		break;
	case 1: /* a plausible bring-up step; FEATURES_OK after offering VERSION_1 */
		b[0] = (uint8_t[]){0, S_ACK, S_ACK | S_DRV, S_ACK | S_DRV | S_FOK,
				   S_ACK | S_DRV | S_FOK | S_DOK}[(r >> 8) % 5];
		if (b[0] == (S_ACK | S_DRV | S_FOK)) {
			uint8_t one[4] = {1}, zero[4] = {0};

			pci_bus_mmio(&bus, bar_base + CC(guest_feature_select), one, 4, true);
			pci_bus_mmio(&bus, bar_base + CC(guest_feature), one, 4, true);
			pci_bus_mmio(&bus, bar_base + CC(guest_feature_select), zero, 4, true);
			pci_bus_mmio(&bus, bar_base + CC(guest_feature), zero, 4, true);
		}
		pci_bus_mmio(&bus, bar_base + CC(device_status), b, 1, true);
		break;
	case 2: /* queue set-up with rings in RAM */
		b[0] = (r >> 8) & 1;
		pci_bus_mmio(&bus, bar_base + CC(queue_select), b, 2, true);
		memcpy(b, &(uint32_t){(uint32_t)DESC(b[0])}, 4);
		pci_bus_mmio(&bus, bar_base + CC(queue_desc_lo), b, 4, true);
		b[0] = 1;
		b[1] = 0;
		pci_bus_mmio(&bus, bar_base + CC(queue_enable), b, 2, true);
		break;
	case 3: /* ISR, notify */
		pci_bus_mmio(&bus, bar_base + VPCI_ISR_OFF, b, 1, false);
		pci_bus_mmio(&bus, bar_base + VPCI_NOTIFY_OFF + ((r >> 8) % 4) * 4, b, 2, true);
		break;
	case 4: /* the MSI-X table and PBA, past their ends too */
		pci_bus_mmio(&bus, bar_base + VPCI_MSIX_TABLE_OFF + ((r >> 8) % 0x4000), b, w,
			     (r >> 24) & 1);
		break;
	case 5: /* MSI-X enable / function mask */
		pci_cfg_write_val(&vp->fn, msix_cap() + PCI_MSIX_FLAGS, 2, (uint32_t)v & 0xc000);
		break;
	case 6: /* the PCI_CFG window: geometry, then data */
		pci_cfg_write_val(&vp->fn,
				  vp->cfg_window_cap + offsetof(struct virtio_pci_cap, offset), 4,
				  (uint32_t)((r >> 8) % VPCI_BAR_SIZE) & ~3u);
		pci_cfg_write_val(&vp->fn,
				  vp->cfg_window_cap + offsetof(struct virtio_pci_cap, length), 4,
				  widths[(r >> 30) % 3]);
		if ((r >> 40) & 1)
			pci_cfg_write_val(&vp->fn, vp->cfg_window_cap + 16, 4, (uint32_t)v);
		else
			pci_cfg_read_val(&vp->fn, vp->cfg_window_cap + 16, 4);
		break;
	default: /* the device signals */
		dev.transport->signal_queue(&dev, (r >> 8) & 1);
		break;
	}
}

static void *stress_thread(void *arg)
{
	uint64_t rng = (uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;

	for (unsigned int i = 0; i < STRESS_OPS; i++)
		stress_op(&rng);
	return NULL;
}

Test(virtio_pci, several_vcpus_at_once_never_crash_deadlock_or_double_activate, .timeout = 120)
{
	pthread_t t[STRESS_THREADS];

	cr_assert_eq(event_loop_start(&loop, NULL), 0);
	for (uintptr_t i = 0; i < STRESS_THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, stress_thread, (void *)(i + 1)), 0);
	for (unsigned int i = 0; i < STRESS_THREADS; i++)
		pthread_join(t[i], NULL);
	event_loop_stop(&loop);
	cr_log_info("activates %u resets %u", activates, resets);
	cr_assert_eq(double_activations, 0);
	cr_assert_gt(activates, 0, "the stress never got the device running");
	/* The transport still works: a clean bring-up after it all. */
	CW(device_status, 0);
	cr_assert_eq(CR(device_status), 0);
	enable_memory(true);
	msix_enable(false);
	bring_up();
}
