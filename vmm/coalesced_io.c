#include "vmm/coalesced_io.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

void coalesced_io_init(struct coalesced_io *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
}

void coalesced_io_set_ring(struct coalesced_io *c, void *ring_page, size_t page_size)
{
	c->ring = NULL;
	c->max = 0;
	if (!ring_page || page_size <= sizeof(struct kvm_coalesced_mmio_ring))
		return;
	/* KVM_COALESCED_MMIO_MAX, from the page size KVM uses (the host's). */
	c->max = (uint32_t)((page_size - sizeof(struct kvm_coalesced_mmio_ring)) /
			    sizeof(struct kvm_coalesced_mmio));
	if (c->max)
		c->ring = ring_page;
}

void coalesced_io_destroy(struct coalesced_io *c)
{
	pthread_mutex_destroy(&c->lock);
	c->ring = NULL;
}

int coalesced_io_add_pio(struct coalesced_io *c, int vm_fd, uint16_t port, uint32_t len,
			 struct kerr *err)
{
	struct kvm_coalesced_mmio_zone zone = {.addr = port, .size = len, .pio = 1};

	if (!c->ring)
		return 0;
	if (ioctl(vm_fd, KVM_REGISTER_COALESCED_MMIO, &zone) < 0)
		return kerr_set(err, "KVM_REGISTER_COALESCED_MMIO port 0x%x: %s", port,
				strerror(errno));
	return 0;
}

void coalesced_io_drain(struct coalesced_io *c, struct io_bus *pio, struct io_bus *mmio)
{
	struct kvm_coalesced_mmio_ring *r = c->ring;
	uint32_t first, last;

	/* KVM only appends (last); only we consume (first, under the lock). */
	if (!r || __atomic_load_n(&r->first, __ATOMIC_RELAXED) ==
		      __atomic_load_n(&r->last, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&c->lock);
	while ((first = __atomic_load_n(&r->first, __ATOMIC_RELAXED)) !=
	       (last = __atomic_load_n(&r->last, __ATOMIC_ACQUIRE))) {
		if (first >= c->max || last >= c->max)
			break; /* never from KVM: stop rather than read outside the page */
		struct kvm_coalesced_mmio e = r->coalesced_mmio[first];
		if (e.len && e.len <= sizeof(e.data))
			io_bus_dispatch(e.pio ? pio : mmio, e.phys_addr, e.data, e.len, true);
		__atomic_store_n(&r->first, (first + 1) % c->max, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&c->lock);
}
