#include <criterion/criterion.h>
#include <linux/virtio_config.h>
#include <string.h>

#include "fixture_virtqueue.h"

struct virtqueue vq;
struct virtq_chain chain;
struct fx_vring ring;

void set_desc(unsigned int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	fx_set_desc(DESC_GPA, i, addr, len, flags, next);
}

struct vring_avail *avail(void)
{
	return fx_avail(&ring);
}

struct vring_used *used(void)
{
	return fx_used(&ring);
}

uint16_t *used_event(unsigned int size)
{
	return &avail()->ring[size];
}

uint16_t *avail_event(unsigned int size)
{
	return (uint16_t *)&used()->ring[size];
}

void make_avail(uint16_t head)
{
	avail()->ring[ring.avail_idx & (vq.size - 1)] = head;
	ring.avail_idx++;
	__atomic_store_n(&avail()->idx, ring.avail_idx, __ATOMIC_RELEASE);
}

void queue_up(unsigned int size, uint64_t features)
{
	/* The driver zeroes its rings before enabling the queue. */
	memset(host(DESC_GPA), 0, BUF_GPA - DESC_GPA);
	fx_vring_init(&ring, size, DESC_GPA, AVAIL_GPA, USED_GPA);
	virtq_reset(&vq);
	cr_assert_eq(virtq_setup(&vq, &gm, size, DESC_GPA, AVAIL_GPA, USED_GPA, features, NULL), 0);
}

void mem_init(void)
{
	fx_guest_mem_map(RAM_SIZE);
	queue_up(16, 0);
}

void mem_fini(void)
{
	fx_guest_mem_unmap();
}

void expect_pop_error(enum virtq_error e)
{
	cr_assert_eq(virtq_pop(&vq, &chain), -1);
	cr_assert_eq(vq.last_error, e, "got %s, want %s", virtq_strerror(vq.last_error),
		     virtq_strerror(e));
	cr_assert_eq(vq.errors[e], 1);
	cr_assert(vq.broken);
	/* Nothing is consumed from a rejected chain. */
	cr_assert_eq(vq.last_avail_idx, 0);
}

void expect_seg(unsigned int i, uint64_t gpa, uint32_t len, bool writable)
{
	cr_assert_lt(i, chain.nr_segs);
	cr_assert_eq(chain.segs[i].addr, host(gpa), "seg %u", i);
	cr_assert_eq(chain.segs[i].len, len, "seg %u", i);
	cr_assert_eq(chain.segs[i].writable, writable, "seg %u", i);
}
