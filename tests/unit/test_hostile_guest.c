/*
 * A hostile guest writing random descriptor tables, indirect tables and ring indices: the
 * virtqueue must never hand a device a segment outside guest RAM, never loop, and never
 * crash, whatever the bytes. Seeded, so a failure reproduces.
 */
#include <criterion/criterion.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/queue.h"
#include "vmm/guest_mem.h"

#define RAM_SIZE (1ULL << 20)
#define QSIZE 64
#define DESC_GPA 0x1000ULL
#define AVAIL_GPA 0x2000ULL
#define USED_GPA 0x3000ULL
#define ROUNDS 20000

static struct guest_mem gm;
static struct virtqueue vq;
static struct virtq_chain chain;

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: fast, and the same sequence on every run. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

/* Addresses a hostile guest likes: inside RAM, at its edges, past it, and near 2^64. */
static uint64_t nasty_addr(void)
{
	switch (rnd() % 6) {
	case 0:
		return rnd() % RAM_SIZE;
	case 1:
		return RAM_SIZE - (rnd() % 64);
	case 2:
		return RAM_SIZE + (rnd() % 4096);
	case 3:
		return UINT64_MAX - (rnd() % 4096);
	case 4:
		return DESC_GPA + (rnd() % 1024); /* the rings themselves */
	default:
		return rnd();
	}
}

static uint32_t nasty_len(void)
{
	switch (rnd() % 4) {
	case 0:
		return (uint32_t)(rnd() % 4096);
	case 1:
		return UINT32_MAX - (uint32_t)(rnd() % 16);
	case 2:
		return (uint32_t)(rnd() % (16 * 64)); /* indirect-table sized */
	default:
		return (uint32_t)rnd();
	}
}

static void scribble_descs(uint64_t gpa, unsigned int n)
{
	struct vring_desc *d = guest_mem_ptr(&gm, gpa, n * sizeof(*d));

	for (unsigned int i = 0; i < n; i++) {
		d[i].addr = nasty_addr();
		d[i].len = nasty_len();
		d[i].flags = (uint16_t)(rnd() & (VRING_DESC_F_NEXT | VRING_DESC_F_WRITE |
						 VRING_DESC_F_INDIRECT | (rnd() % 2 ? 0x8 : 0)));
		d[i].next = (uint16_t)(rnd() % 2 ? rnd() % QSIZE : rnd());
	}
}

static void check_chain_inside_ram(void)
{
	const uint8_t *lo = gm.regions[0].host, *hi = lo + RAM_SIZE;
	uint64_t readable = 0, writable = 0;

	cr_assert_leq(chain.nr_segs, VIRTQ_MAX_SEGS);
	cr_assert_lt(chain.head, QSIZE);
	for (unsigned int i = 0; i < chain.nr_segs; i++) {
		const uint8_t *p = chain.segs[i].addr;
		cr_assert(p >= lo && p <= hi && chain.segs[i].len <= (uint64_t)(hi - p),
			  "segment %u (%p, %u bytes) is outside guest RAM", i, (void *)p,
			  chain.segs[i].len);
		cr_assert_eq(chain.segs[i].writable, i >= chain.nr_readable,
			     "readable segment after a writable one");
		if (chain.segs[i].writable)
			writable += chain.segs[i].len;
		else
			readable += chain.segs[i].len;
	}
	cr_assert_eq(readable, chain.readable_bytes);
	cr_assert_eq(writable, chain.writable_bytes);
}

static void fuzz(uint64_t features, uint64_t seed)
{
	struct vring_avail *avail = guest_mem_ptr(&gm, AVAIL_GPA, 4 + 2 * QSIZE + 2);
	unsigned int popped = 0, refused = 0;

	rng_state = seed;
	for (int round = 0; round < ROUNDS; round++) {
		virtq_reset(&vq);
		cr_assert_eq(
		    virtq_setup(&vq, &gm, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, features, NULL), 0);
		scribble_descs(DESC_GPA, QSIZE);
		/* Indirect tables somewhere in RAM, full of garbage too. */
		for (int t = 0; t < 4; t++)
			scribble_descs(0x10000 + (rnd() % 0xe0000 & ~0xfULL), 64);
		for (unsigned int i = 0; i < QSIZE; i++)
			avail->ring[i] = (uint16_t)(rnd() % 4 ? rnd() % QSIZE : rnd());
		avail->idx = (uint16_t)(rnd() % 2 ? rnd() % (QSIZE + 8) : rnd());
		/* Pop until the queue is empty or the guest is caught: it must end quickly. */
		for (int n = 0; n < 2 * QSIZE; n++) {
			int r = virtq_pop(&vq, &chain);
			if (r <= 0) {
				refused += r < 0;
				break;
			}
			popped++;
			check_chain_inside_ram();
			virtq_push(&vq, chain.head, 0);
		}
	}
	/* Both outcomes must really occur, or the fuzzer is not exercising anything. */
	cr_log_info("%u chains accepted, %u refused", popped, refused);
	cr_assert_gt(popped, 100, "only %u chains accepted", popped);
	cr_assert_gt(refused, 100, "only %u chains refused", refused);
}

static void mem_init(void)
{
	struct guest_mem_region r = {.gpa = 0, .size = RAM_SIZE};

	cr_assert_eq(guest_mem_map(&gm, &r, 1, NULL), 0);
}

static void mem_fini(void)
{
	guest_mem_unmap(&gm);
}

TestSuite(hostile_guest, .init = mem_init, .fini = mem_fini, .timeout = 60);

Test(hostile_guest, random_rings_plain)
{
	fuzz(0, 0x1234567887654321ULL);
}

Test(hostile_guest, random_rings_indirect_event_idx)
{
	fuzz((1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_RING_F_EVENT_IDX),
	     0x0badc0ffee0ddf00ULL);
}
