/* virtio-pci notifications: kicks reach the device only when they should, ioeventfds follow BAR 0.
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

/* ---- a queue whose kicks the device wants on a loop of its own (queue_loop) ---- */

static struct event_loop other;

static void setup_other_loop(void)
{
	cr_assert_eq(event_loop_init(&other, NULL), 0);
	queue1_loop = &other;
	setup();
}

static void teardown_other_loop(void)
{
	teardown();
	queue1_loop = NULL;
	event_loop_destroy(&other);
}

static int ready_on(struct event_loop *el, int fd)
{
	struct epoll_event evs[8];
	int n = epoll_wait(el->epfd, evs, 8, 0), hits = 0;

	for (int i = 0; i < n; i++) {
		const struct event_handler *h = evs[i].data.ptr;

		hits += h && h->fd == fd;
	}
	return hits;
}

TestSuite(virtio_pci_queue_loop, .init = setup_other_loop, .fini = teardown_other_loop);

Test(virtio_pci_queue_loop, kicks_are_polled_on_the_queues_loop)
{
	cr_assert_eq(negotiate(VERSION_1), S_ACK | S_DRV | S_FOK);
	enable_queue(0);
	enable_queue(1);
	CW(device_status, S_ACK | S_DRV | S_FOK | S_DOK);
	memset(notifies, 0, sizeof(notifies));

	bar_write(VPCI_NOTIFY_OFF + 1 * VPCI_NOTIFY_MULT, 2, 1);
	bar_write(VPCI_NOTIFY_OFF, 2, 0);
	cr_assert_eq(ready_on(&loop, vp->core.kicks[1].h.fd), 0, "queue 1 on the transport's loop");
	cr_assert_eq(ready_on(&other, vp->core.kicks[0].h.fd), 0, "queue 0 on the other loop");
	cr_assert_eq(ready_on(&other, vp->core.kicks[1].h.fd), 1);
	cr_assert_eq(event_loop_run_once(&other, 0), 1);
	cr_assert_eq(notifies[1], 1);
	cr_assert_eq(notifies[0], 0);
	cr_assert_eq(ready_on(&loop, vp->core.kicks[0].h.fd), 1);

	/* A vhost-style hand-over takes it off that loop, and gives it back there. */
	vt_poll_kicks(&vp->core, 1, false);
	bar_write(VPCI_NOTIFY_OFF + 1 * VPCI_NOTIFY_MULT, 2, 1);
	cr_assert_eq(ready_on(&other, vp->core.kicks[1].h.fd), 0);
	vt_poll_kicks(&vp->core, 1, true);
	cr_assert_eq(ready_on(&other, vp->core.kicks[1].h.fd), 1);
}
