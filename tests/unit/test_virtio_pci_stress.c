/* virtio-pci under several vCPUs at once: random register traffic never crashes, deadlocks or
 * double-activates. */
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
