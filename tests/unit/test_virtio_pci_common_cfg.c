/* virtio-pci common configuration: feature negotiation, device status, queue registers and reset.
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

#include "fixture_virtio_pci.h"

TestSuite(virtio_pci, .init = setup, .fini = teardown);

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
