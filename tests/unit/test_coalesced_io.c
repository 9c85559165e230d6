/*
 * Replaying KVM's ring of coalesced writes: in order, onto the right bus, ring emptied; an
 * index out of the ring (never from KVM) stops the replay instead of reading past the page.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "vmm/coalesced_io.h"

#define PAGE 4096

struct rec {
	int calls;
	uint32_t last[16];
	uint64_t offset[16];
};

static void rec_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct rec *r = opaque;

	cr_assert(is_write);
	cr_assert_leq(size, 4);
	uint32_t v = 0;
	memcpy(&v, data, size);
	if (r->calls < 16) {
		r->last[r->calls] = v;
		r->offset[r->calls] = offset;
	}
	r->calls++;
}

static _Alignas(PAGE) uint8_t page[PAGE];
static struct io_bus pio, mmio;
static struct rec pio_rec, mmio_rec;
static struct coalesced_io c;

static void setup(void)
{
	struct kerr err = {{0}};

	memset(page, 0, sizeof(page));
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	memset(&pio_rec, 0, sizeof(pio_rec));
	memset(&mmio_rec, 0, sizeof(mmio_rec));
	cr_assert_eq(io_bus_register(&pio, 0xcf8, 4, rec_io, &pio_rec, "cf8", &err), 0);
	cr_assert_eq(io_bus_register(&mmio, 0x1000, 0x100, rec_io, &mmio_rec, "m", &err), 0);
	coalesced_io_init(&c);
	coalesced_io_set_ring(&c, page, PAGE);
}

static void teardown(void)
{
	coalesced_io_destroy(&c);
}

TestSuite(coalesced_io, .init = setup, .fini = teardown);

static struct kvm_coalesced_mmio_ring *ring(void)
{
	return (struct kvm_coalesced_mmio_ring *)page;
}

static void push(uint64_t addr, uint32_t len, uint32_t value, bool is_pio)
{
	struct kvm_coalesced_mmio_ring *r = ring();
	struct kvm_coalesced_mmio *e = &r->coalesced_mmio[r->last];

	e->phys_addr = addr;
	e->len = len;
	e->pio = is_pio;
	memcpy(e->data, &value, sizeof(value));
	r->last = (r->last + 1) % c.max;
}

Test(coalesced_io, ring_size_matches_kvm)
{
	cr_assert_eq(c.max, (PAGE - sizeof(struct kvm_coalesced_mmio_ring)) /
				sizeof(struct kvm_coalesced_mmio));
}

Test(coalesced_io, replays_in_order_and_empties_the_ring)
{
	push(0xcf8, 4, 0x80000000, true);
	push(0xcf8, 4, 0x80000800, true);
	push(0x1010, 2, 0xbeef, false);
	push(0xcf9, 1, 0x06, true);
	coalesced_io_drain(&c, &pio, &mmio);
	cr_assert_eq(pio_rec.calls, 3);
	cr_assert_eq(pio_rec.last[0], 0x80000000);
	cr_assert_eq(pio_rec.last[1], 0x80000800);
	cr_assert_eq(pio_rec.last[2], 0x06);
	cr_assert_eq(pio_rec.offset[2], 1);
	cr_assert_eq(mmio_rec.calls, 1);
	cr_assert_eq(mmio_rec.last[0], 0xbeef);
	cr_assert_eq(mmio_rec.offset[0], 0x10);
	cr_assert_eq(ring()->first, ring()->last);
	coalesced_io_drain(&c, &pio, &mmio); /* nothing new: nothing replayed */
	cr_assert_eq(pio_rec.calls, 3);
}

Test(coalesced_io, wraps_around)
{
	ring()->first = ring()->last = c.max - 1;
	push(0xcf8, 4, 1, true);
	push(0xcf8, 4, 2, true);
	cr_assert_eq(ring()->last, 1);
	coalesced_io_drain(&c, &pio, &mmio);
	cr_assert_eq(pio_rec.calls, 2);
	cr_assert_eq(pio_rec.last[1], 2);
	cr_assert_eq(ring()->first, 1);
}

Test(coalesced_io, bad_entries_and_indexes)
{
	push(0xcf8, 0, 1, true);  /* empty: skipped */
	push(0xcf8, 16, 1, true); /* longer than the data: skipped */
	coalesced_io_drain(&c, &pio, &mmio);
	cr_assert_eq(pio_rec.calls, 0);
	cr_assert_eq(ring()->first, ring()->last);
	ring()->last = c.max + 5; /* outside the ring: stop, do not spin or read past the page */
	coalesced_io_drain(&c, &pio, &mmio);
	cr_assert_eq(pio_rec.calls, 0);
}

Test(coalesced_io, without_a_ring_nothing_is_registered)
{
	struct coalesced_io none;
	struct kerr err = {{0}};

	coalesced_io_init(&none);
	coalesced_io_set_ring(&none, NULL, PAGE);
	cr_assert_null(none.ring);
	cr_assert_eq(coalesced_io_add_pio(&none, -1, 0xcf8, 4, &err), 0);
	coalesced_io_drain(&none, &pio, &mmio);
	coalesced_io_destroy(&none);
}
