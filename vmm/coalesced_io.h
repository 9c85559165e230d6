/*
 * Coalesced port writes: KVM queues the guest's writes to a registered port range in a ring
 * page shared with kestrel instead of exiting, and kestrel replays them, in order, before it
 * handles the next exit of any vCPU. Only for index registers, whose write merely selects what
 * the next access (a data-port access, which exits) reaches: PCI CONFIG_ADDRESS (0xcf8) halves
 * the exits of every config-space access through ports 0xcf8/0xcfc, as QEMU does for it.
 * One consequence, shared with QEMU: a byte written to 0xcf9 (reset control, inside the
 * dword zone) takes effect at that vCPU's next exit; Linux's reboot path always makes one.
 */
#ifndef KESTREL_COALESCED_IO_H
#define KESTREL_COALESCED_IO_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/io_bus.h"

struct coalesced_io {
	struct kvm_coalesced_mmio_ring *ring; /* NULL: nothing is coalesced */
	uint32_t max;			      /* entries in the ring */
	/*
	 * One ring per VM, drained by any vCPU. Lock order: this lock first, then any lock the
	 * replayed writes' handlers take (0xcf8 takes none: atomics); no handler drains the ring.
	 */
	pthread_mutex_t lock;
};

/* Empty, with no ring: safe to destroy from here on. */
void coalesced_io_init(struct coalesced_io *c);
/* ring_page: the ring's page in a vCPU's run mapping (NULL when KVM has none). */
void coalesced_io_set_ring(struct coalesced_io *c, void *ring_page, size_t page_size);
void coalesced_io_destroy(struct coalesced_io *c);
/* Asks KVM to coalesce writes to ports [port, port + len); a no-op without a ring. */
int coalesced_io_add_pio(struct coalesced_io *c, int vm_fd, uint16_t port, uint32_t len,
			 struct kerr *err);
/* Replays the queued writes on the buses; cheap when the ring is empty. */
void coalesced_io_drain(struct coalesced_io *c, struct io_bus *pio, struct io_bus *mmio);

#endif
