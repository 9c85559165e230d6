/* virtio-pci identity and capabilities, the device-specific config region, and the
 * VIRTIO_PCI_CAP_PCI_CFG window. */
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
