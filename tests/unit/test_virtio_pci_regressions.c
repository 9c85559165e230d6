/* virtio-pci regression tests from issue 7: each bug class a guest could reach. */
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

#include "fixture_virtio_pci.h"

TestSuite(virtio_pci, .init = setup, .fini = teardown);

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
