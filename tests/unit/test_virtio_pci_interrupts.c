/* virtio-pci interrupts: INTx with the ISR, MSI-X vectors, irqfds, masking and pending bits. */
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
