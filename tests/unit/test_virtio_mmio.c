/*
 * The virtio-mmio transport (version 2) driven the way a guest driver drives it: 32-bit
 * accesses to the register window, anything else as a hostile driver might. Behind it sit a
 * fake device (counts the ops the transport calls) and a fake platform (records ioeventfd
 * binds and the irqfd). The event loop is never started: work runs at once, and a test runs
 * the loop's handlers by hand.
 */
#include <criterion/criterion.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "virtio/mmio.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"

#define RAM_SIZE (1ULL << 20)
#define NQ 2
#define QMAX 128
#define BASE 0xd0000000ULL
#define GSI 5
#define VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define DESC(q) (0x10000ULL * ((q) + 1))
#define AVAIL(q) (DESC(q) + 0x1000)
#define USED(q) (DESC(q) + 0x2000)

static struct guest_mem gm;
static struct event_loop loop;
static struct virtio_dev dev;
static struct virtio_mmio *vm;
static unsigned int activates, resets, notifies[NQ];
static uint8_t cfg[8] = {1, 2, 3, 4, 5, 6, 7, 8};

static void dev_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	(void)d;
	memcpy(data, cfg + off, len);
}

static void dev_config_write(struct virtio_dev *d, uint32_t off, const uint8_t *data, uint32_t len)
{
	(void)d;
	memcpy(cfg + off, data, len);
}

static int dev_activate(struct virtio_dev *d)
{
	(void)d;
	activates++;
	return 0;
}

static void dev_reset(struct virtio_dev *d)
{
	(void)d;
	resets++;
}

static void dev_queue_notify(struct virtio_dev *d, uint16_t q)
{
	(void)d;
	notifies[q]++;
}

static const struct virtio_dev_ops dev_ops = {
    .config_read = dev_config_read,
    .config_write = dev_config_write,
    .activate = dev_activate,
    .reset = dev_reset,
    .queue_notify = dev_queue_notify,
};

/* ---- fake platform ---- */

struct bind {
	int efd;
	uint64_t addr;
	uint32_t datamatch;
};
static struct bind binds[NQ];
static unsigned int nr_binds;
static int irq_efd = -1, resample_efd = -1;

static int fake_ioeventfd(void *opaque, int efd, uint64_t addr, uint32_t datamatch, bool assign,
			  struct kerr *err)
{
	(void)opaque;
	(void)err;
	if (assign) {
		cr_assert_lt(nr_binds, NQ);
		binds[nr_binds++] = (struct bind){efd, addr, datamatch};
	} else {
		nr_binds--;
	}
	return 0;
}

static int fake_irqfd(void *opaque, int efd, int resample_fd, uint32_t gsi, bool assign,
		      struct kerr *err)
{
	(void)opaque;
	(void)err;
	cr_assert_eq(gsi, GSI);
	irq_efd = assign ? efd : -1;
	resample_efd = assign ? resample_fd : -1;
	return 0;
}

static void setup(void)
{
	struct guest_mem_region layout = {.gpa = 0, .size = RAM_SIZE};
	struct virtio_mmio_platform plat = {
	    .ioeventfd = fake_ioeventfd, .irqfd = fake_irqfd, .loop = &loop};
	struct kerr err;

	activates = resets = nr_binds = 0;
	memset(notifies, 0, sizeof(notifies));
	cr_assert_eq(guest_mem_map(&gm, &layout, 1, NULL), 0);
	cr_assert_eq(event_loop_init(&loop, NULL), 0);
	dev = (struct virtio_dev){.name = "fake",
				  .device_id = 2,
				  .ops = &dev_ops,
				  .mem = &gm,
				  .host_features = 1ULL << 5,
				  .config_len = sizeof(cfg),
				  .num_queues = NQ,
				  .queue_max_size = QMAX};
	cr_assert_eq(virtio_mmio_create(&vm, &dev, &plat, BASE, GSI, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
	virtio_mmio_destroy(vm);
	cr_assert_eq(nr_binds, 0, "ioeventfds left bound");
	cr_assert_eq(irq_efd, -1, "irqfd left attached");
	event_loop_destroy(&loop);
	guest_mem_unmap(&gm);
}

TestSuite(virtio_mmio, .init = setup, .fini = teardown);

/* ---- driver-side accessors ---- */

static uint64_t rd(uint64_t off, unsigned int size)
{
	uint8_t b[8];
	uint64_t v = 0;

	memset(b, 0xee, sizeof(b));
	virtio_mmio_io(vm, off, b, size, false);
	for (unsigned int i = 0; i < size; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void wr(uint64_t off, unsigned int size, uint64_t v)
{
	uint8_t b[8];

	for (unsigned int i = 0; i < size; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	virtio_mmio_io(vm, off, b, size, true);
}

#define R(reg) ((uint32_t)rd(VIRTIO_MMIO_##reg, 4))
#define W(reg, v) wr(VIRTIO_MMIO_##reg, 4, (v))

static uint8_t negotiate(uint64_t features)
{
	W(STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	W(STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	W(DRIVER_FEATURES_SEL, 0);
	W(DRIVER_FEATURES, (uint32_t)features);
	W(DRIVER_FEATURES_SEL, 1);
	W(DRIVER_FEATURES, (uint32_t)(features >> 32));
	W(STATUS,
	  VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	return (uint8_t)R(STATUS);
}

static void setup_queue(uint16_t q, uint32_t size)
{
	W(QUEUE_SEL, q);
	W(QUEUE_NUM, size);
	W(QUEUE_DESC_LOW, (uint32_t)DESC(q));
	W(QUEUE_DESC_HIGH, 0);
	W(QUEUE_AVAIL_LOW, (uint32_t)AVAIL(q));
	W(QUEUE_AVAIL_HIGH, 0);
	W(QUEUE_USED_LOW, (uint32_t)USED(q));
	W(QUEUE_USED_HIGH, 0);
	W(QUEUE_READY, 1);
}

#define S_ALL                                                                                      \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |      \
	 VIRTIO_CONFIG_S_DRIVER_OK)

static void bring_up(void)
{
	cr_assert_eq(negotiate(VERSION_1), S_ALL & ~VIRTIO_CONFIG_S_DRIVER_OK);
	for (uint16_t q = 0; q < NQ; q++)
		setup_queue(q, QMAX);
	W(STATUS, S_ALL);
	cr_assert_eq(R(STATUS), S_ALL);
}

static uint64_t efd_count(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* ---- identification ---- */

Test(virtio_mmio, identifies_as_a_version_2_device)
{
	cr_assert_eq(R(MAGIC_VALUE), 0x74726976);
	cr_assert_eq(R(VERSION), 2);
	cr_assert_eq(R(DEVICE_ID), 2);
	cr_assert_eq(R(VENDOR_ID), VIRTIO_MMIO_VENDOR);
	cr_assert_eq(R(QUEUE_NUM_MAX), QMAX);
}

Test(virtio_mmio, device_features_offer_version_1)
{
	W(DEVICE_FEATURES_SEL, 0);
	cr_assert_eq(R(DEVICE_FEATURES), 1u << 5);
	W(DEVICE_FEATURES_SEL, 1);
	cr_assert_eq(R(DEVICE_FEATURES), 1u << (VIRTIO_F_VERSION_1 - 32));
	W(DEVICE_FEATURES_SEL, 7);
	cr_assert_eq(R(DEVICE_FEATURES), 0);
}

Test(virtio_mmio, shared_memory_regions_read_as_absent)
{
	W(SHM_SEL, 0);
	cr_assert_eq(R(SHM_LEN_LOW), 0xffffffff);
	cr_assert_eq(R(SHM_LEN_HIGH), 0xffffffff);
}

/* ---- hostile accesses ---- */

Test(virtio_mmio, write_only_registers_read_zero)
{
	static const uint64_t regs[] = {
	    VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES,
	    VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_SEL,
	    VIRTIO_MMIO_QUEUE_NUM,	     VIRTIO_MMIO_QUEUE_NOTIFY,
	    VIRTIO_MMIO_INTERRUPT_ACK,	     VIRTIO_MMIO_QUEUE_DESC_LOW,
	    VIRTIO_MMIO_QUEUE_DESC_HIGH,     VIRTIO_MMIO_QUEUE_AVAIL_LOW,
	    VIRTIO_MMIO_QUEUE_USED_HIGH,     VIRTIO_MMIO_SHM_SEL,
	};

	W(DEVICE_FEATURES_SEL, 1);
	W(QUEUE_SEL, 1);
	W(QUEUE_NUM, 16);
	for (unsigned int i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		cr_assert_eq(rd(regs[i], 4), 0, "register 0x%llx", (unsigned long long)regs[i]);
}

Test(virtio_mmio, control_registers_take_only_aligned_32_bit_accesses)
{
	static const unsigned int widths[] = {1, 2, 8};

	for (unsigned int i = 0; i < 3; i++) {
		cr_assert_eq(rd(VIRTIO_MMIO_MAGIC_VALUE, widths[i]), 0);
		wr(VIRTIO_MMIO_STATUS, widths[i], VIRTIO_CONFIG_S_ACKNOWLEDGE);
		cr_assert_eq(R(STATUS), 0, "a %u-byte status write was taken", widths[i]);
	}
	cr_assert_eq(rd(VIRTIO_MMIO_MAGIC_VALUE + 1, 4), 0);
	wr(VIRTIO_MMIO_STATUS + 2, 4, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	cr_assert_eq(R(STATUS), 0);
	cr_assert_gt(vt_errors(&vm->core), 0);
}

Test(virtio_mmio, config_space_takes_every_width_and_stays_in_bounds)
{
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG + 1, 1), 2);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG + 2, 2), 0x0403);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG, 8), 0x0807060504030201ULL);
	wr(VIRTIO_MMIO_CONFIG + 4, 4, 0xaabbccdd);
	cr_assert_eq(cfg[4], 0xdd);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG + 6, 4), 0, "a read past the config space");
	cr_assert_eq(rd(VIRTIO_MMIO_WINDOW - 4, 4), 0);
	wr(VIRTIO_MMIO_CONFIG + 7, 2, 0xffff);
	cr_assert_eq(cfg[7], 0xaa, "a write past the config space was taken");
}

Test(virtio_mmio, queues_are_refused_before_features_ok)
{
	W(STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	setup_queue(0, QMAX);
	cr_assert_eq(R(QUEUE_READY), 0);
	cr_assert_not(dev.vqs[0].ready);
}

Test(virtio_mmio, queue_ready_on_a_queue_that_does_not_exist_is_ignored)
{
	cr_assert_eq(negotiate(VERSION_1), S_ALL & ~VIRTIO_CONFIG_S_DRIVER_OK);
	W(QUEUE_SEL, NQ);
	cr_assert_eq(R(QUEUE_NUM_MAX), 0);
	W(QUEUE_READY, 1);
	cr_assert_eq(R(QUEUE_READY), 0);
	W(QUEUE_SEL, 0xffff);
	W(QUEUE_READY, 1);
	cr_assert_eq(R(QUEUE_READY), 0);
}

Test(virtio_mmio, queue_sizes_above_the_maximum_are_refused)
{
	cr_assert_eq(negotiate(VERSION_1), S_ALL & ~VIRTIO_CONFIG_S_DRIVER_OK);
	setup_queue(0, QMAX * 2);
	cr_assert_eq(R(QUEUE_READY), 0);
	cr_assert(R(STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* ---- the lifecycle ---- */

Test(virtio_mmio, bring_up_activates_once_and_kicks_reach_the_device)
{
	bring_up();
	cr_assert_eq(activates, 1);
	cr_assert_eq(dev.vqs[1].size, QMAX);
	/* One ioeventfd per queue on QueueNotify, told apart by the written value. */
	cr_assert_eq(nr_binds, NQ);
	for (uint32_t q = 0; q < NQ; q++) {
		cr_assert_eq(binds[q].addr, BASE + VIRTIO_MMIO_QUEUE_NOTIFY);
		cr_assert_eq(binds[q].datamatch, q);
		cr_assert_eq(binds[q].efd, vm->core.kicks[q].h.fd);
	}
	/* Activation looked at every queue once (kicks before DRIVER_OK are not lost). */
	cr_assert_eq(notifies[0], 1);
	cr_assert_eq(notifies[1], 1);
	W(QUEUE_NOTIFY, 1);
	cr_assert_eq(event_loop_run_once(&loop, 0), 1);
	cr_assert_eq(notifies[1], 2);
	cr_assert_eq(notifies[0], 1);
	W(QUEUE_NOTIFY, 9); /* no such queue */
	cr_assert_eq(event_loop_run_once(&loop, 0), 0);
}

Test(virtio_mmio, reset_clears_status_queues_and_interrupts)
{
	bring_up();
	dev.transport->signal_queue(&dev, 0);
	W(STATUS, 0);
	cr_assert_eq(R(STATUS), 0);
	cr_assert_eq(resets, 1);
	cr_assert_eq(R(INTERRUPT_STATUS), 0);
	W(QUEUE_SEL, 0);
	cr_assert_eq(R(QUEUE_READY), 0);
	cr_assert_not(dev.vqs[0].ready);
	bring_up();
	cr_assert_eq(activates, 2);
}

/* ---- interrupts ---- */

Test(virtio_mmio, interrupt_status_and_the_level_line)
{
	bring_up();
	cr_assert_geq(irq_efd, 0);
	dev.transport->signal_queue(&dev, 0);
	cr_assert_eq(R(INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	cr_assert_eq(efd_count(irq_efd), 1);
	/* The line is up already: a second cause does not pulse it again. */
	dev.transport->signal_config(&dev);
	cr_assert_eq(R(INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(efd_count(irq_efd), 0);
	cr_assert_eq(R(CONFIG_GENERATION), 1);
	/* EOI with a cause still pending: the resample raises the line again. */
	W(INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	cr_assert_eq(write(resample_efd, &(uint64_t){1}, 8), 8);
	cr_assert_eq(event_loop_run_once(&loop, 0), 1);
	cr_assert_eq(efd_count(irq_efd), 1);
	/* All acknowledged: the resample leaves the line down. */
	W(INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	cr_assert_eq(R(INTERRUPT_STATUS), 0);
	cr_assert_eq(write(resample_efd, &(uint64_t){1}, 8), 8);
	event_loop_run_once(&loop, 0);
	cr_assert_eq(efd_count(irq_efd), 0);
	/* A new cause after that raises it again. */
	dev.transport->signal_queue(&dev, 1);
	cr_assert_eq(efd_count(irq_efd), 1);
}

Test(virtio_mmio, needs_reset_is_announced_with_a_config_interrupt)
{
	bring_up();
	dev.transport->needs_reset(&dev);
	cr_assert(R(STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	cr_assert_eq(R(INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
}

Test(virtio_mmio, vhost_gets_no_direct_call_fd)
{
	cr_assert_eq(dev.transport->call_fd(&dev, 0), -1);
	cr_assert_eq(dev.transport->kick_fd(&dev, 1), vm->core.kicks[1].h.fd);
	cr_assert_eq(dev.transport->kick_fd(&dev, NQ), -1);
}

Test(virtio_mmio, kernel_command_line_declaration)
{
	char buf[64] = "console=ttyS0";
	char tiny[20] = "quiet";

	cr_assert_eq(virtio_mmio_cmdline_append(vm, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5");
	cr_assert_eq(virtio_mmio_cmdline_append(vm, tiny, sizeof(tiny)), -1);
	cr_assert_str_eq(tiny, "quiet", "a declaration that does not fit is left out whole");
}
