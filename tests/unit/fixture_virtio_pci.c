#include <criterion/criterion.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "fixture_virtio_pci.h"

struct event_loop loop;
struct pci_bus bus;
struct pci_window win;
struct virtio_dev dev;
struct virtio_pci *vp;
uint64_t bar_base;

/* ---- fake device ---- */

uint8_t cfg_bytes[CFG_LEN];
unsigned int activates, resets, config_reads, config_writes;
unsigned int notifies[NQ], irq_changes[NQ];
int activate_result;
uint32_t last_cfg_off, last_cfg_len;
uint8_t last_cfg_data[8];

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
unsigned int double_activations;

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
void (*during_reset)(void);

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
uint64_t refused_combo;

static bool fake_validate_features(struct virtio_dev *d, uint64_t f)
{
	(void)d;
	return !refused_combo || (f & refused_combo) != refused_combo;
}

/* Where queue 1's kicks go (queue_loop); NULL: the transport's loop. Set before setup(). */
struct event_loop *queue1_loop;

static struct event_loop *fake_queue_loop(struct virtio_dev *d, uint16_t q)
{
	(void)d;
	return q == 1 ? queue1_loop : NULL;
}

static const struct virtio_dev_ops fake_ops = {
    .config_read = fake_config_read,
    .validate_features = fake_validate_features,
    .config_write = fake_config_write,
    .activate = fake_activate,
    .reset = fake_reset,
    .queue_notify = fake_queue_notify,
    .queue_irq_changed = fake_queue_irq_changed,
    .queue_loop = fake_queue_loop,
};

/* ---- fake platform ---- */

struct ioefd_rec ioefds[MAX_REC];
unsigned int nr_ioefds;
unsigned int nr_route_adds;
uint32_t route_devids[MAX_REC];
struct route_rec route_sets[MAX_REC];
unsigned int nr_route_sets;
int intx_level;
unsigned int intx_calls;

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
int irqfd_of[FIRST_GSI + MAX_REC];

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

void reset_records(void)
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
void drain_loop(void)
{
	loop.call_handler.fn(loop.call_handler.opaque, EPOLLIN);
}

void enable_memory(bool on)
{
	uint32_t cmd = pci_cfg_read_val(&vp->fn, PCI_COMMAND, 2);

	cmd = on ? cmd | PCI_COMMAND_MEMORY : cmd & ~(uint32_t)PCI_COMMAND_MEMORY;
	pci_cfg_write_val(&vp->fn, PCI_COMMAND, 2, cmd);
}

void setup(void)
{
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
	fx_guest_mem_map(RAM_SIZE);
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

void teardown(void)
{
	if (vp) {
		drain_loop();
		virtio_pci_destroy(vp);
		vp = NULL;
	}
	pci_bus_destroy(&bus);
	event_loop_destroy(&loop);
	fx_guest_mem_unmap();
}

/* ---- guest-side accessors ---- */

void bar_write(uint64_t off, unsigned int size, uint64_t v)
{
	uint8_t b[8];

	for (unsigned int i = 0; i < size; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	cr_assert(pci_bus_mmio(&bus, bar_base + off, b, size, true), "BAR 0 does not decode");
}

uint64_t bar_read(uint64_t off, unsigned int size)
{
	uint8_t b[8];
	uint64_t v = 0;

	memset(b, 0xee, sizeof(b));
	cr_assert(pci_bus_mmio(&bus, bar_base + off, b, size, false), "BAR 0 does not decode");
	for (unsigned int i = 0; i < size; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

uint64_t device_features(void)
{
	uint64_t f;

	CW(device_feature_select, 0);
	f = CR(device_feature);
	CW(device_feature_select, 1);
	f |= CR(device_feature) << 32;
	return f;
}

void write_guest_features(uint64_t f)
{
	CW(guest_feature_select, 0);
	CW(guest_feature, (uint32_t)f);
	CW(guest_feature_select, 1);
	CW(guest_feature, f >> 32);
}

uint64_t read_guest_features(void)
{
	uint64_t f;

	CW(guest_feature_select, 0);
	f = CR(guest_feature);
	CW(guest_feature_select, 1);
	f |= CR(guest_feature) << 32;
	return f;
}

/* ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns the status read back. */
uint8_t negotiate(uint64_t features)
{
	CW(device_status, S_ACK);
	CW(device_status, S_ACK | S_DRV);
	write_guest_features(features);
	CW(device_status, S_ACK | S_DRV | S_FOK);
	return (uint8_t)CR(device_status);
}

void program_queue(uint16_t q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
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

void enable_queue(uint16_t q)
{
	program_queue(q, QMAX, DESC(q), AVAIL(q), USED(q));
	CW(queue_enable, 1);
	cr_assert_eq(CR(queue_enable), 1);
}

/* The whole driver bring-up: features, both queues, DRIVER_OK. */
void bring_up(void)
{
	unsigned int before = activates;

	cr_assert_eq(negotiate(VERSION_1 | HOST_FEATURES), S_ACK | S_DRV | S_FOK);
	for (uint16_t q = 0; q < NQ; q++)
		enable_queue(q);
	CW(device_status, S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(CR(device_status), S_ACK | S_DRV | S_FOK | S_DOK);
	cr_assert_eq(activates, before + 1);
}

uint64_t read_efd(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

unsigned int msix_cap(void)
{
	unsigned int cap = pci_find_cap(&vp->fn, PCI_CAP_ID_MSIX);

	cr_assert_neq(cap, 0, "no MSI-X capability");
	return cap;
}

void msix_enable(bool on)
{
	pci_cfg_write_val(&vp->fn, msix_cap() + PCI_MSIX_FLAGS, 2, on ? PCI_MSIX_FLAGS_ENABLE : 0);
}

void msix_program(unsigned int v, uint64_t addr, uint32_t data, bool masked)
{
	uint64_t e = VPCI_MSIX_TABLE_OFF + 16ULL * v;

	bar_write(e + PCI_MSIX_ENTRY_LOWER_ADDR, 4, (uint32_t)addr);
	bar_write(e + PCI_MSIX_ENTRY_UPPER_ADDR, 4, addr >> 32);
	bar_write(e + PCI_MSIX_ENTRY_DATA, 4, data);
	bar_write(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0);
}

/* Collects the vendor-specific capabilities by cfg_type; returns how many there are. */
unsigned int vendor_caps(unsigned int off_by_type[16])
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

void expect_cap(unsigned int off, unsigned int len, uint32_t offset, uint32_t min_length,
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

/* ---- the VIRTIO_PCI_CAP_PCI_CFG window ---- */

void window_set(uint32_t offset, uint32_t length)
{
	unsigned int cap = vp->cfg_window_cap;

	pci_cfg_write_val(&vp->fn, cap + offsetof(struct virtio_pci_cap, bar), 1, 0);
	pci_cfg_write_val(&vp->fn, cap + offsetof(struct virtio_pci_cap, offset), 4, offset);
	pci_cfg_write_val(&vp->fn, cap + offsetof(struct virtio_pci_cap, length), 4, length);
}

uint32_t window_read(unsigned int size)
{
	return pci_cfg_read_val(
	    &vp->fn, vp->cfg_window_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data), size);
}

void window_write(unsigned int size, uint32_t v)
{
	pci_cfg_write_val(&vp->fn,
			  vp->cfg_window_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data),
			  size, v);
}
