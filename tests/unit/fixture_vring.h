/*
 * The driver side of a split virtqueue, written straight into the fake guest RAM the way a
 * (possibly hostile) guest would: descriptors, the avail ring, and reading the used ring.
 */
#pragma once

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>

/* One buffer of a chain: guest address, length, device-writable or not. */
struct fx_seg {
	uint64_t gpa;
	uint32_t len;
	bool w;
};

/* Where a queue's rings are and the driver's own indices into them. */
struct fx_vring {
	uint64_t desc, avail, used;
	uint16_t size;
	uint16_t avail_idx; /* the driver's avail->idx */
	uint16_t next_desc; /* the next free descriptor */
	uint16_t used_seen; /* used entries the driver has taken */
};

/* Lays the rings out at desc/avail/used for a queue of size entries; indices start at 0. */
void fx_vring_init(struct fx_vring *r, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used);
struct vring_desc *fx_desc_at(uint64_t table_gpa, unsigned int i);
void fx_set_desc(uint64_t table_gpa, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next);
struct vring_avail *fx_avail(const struct fx_vring *r);
struct vring_used *fx_used(const struct fx_vring *r);
uint16_t fx_used_idx(const struct fx_vring *r);
/* Publishes head in the avail ring and bumps avail->idx (release). */
void fx_make_avail(struct fx_vring *r, uint16_t head);
/* Puts a chain of n buffers in the descriptor table (from 0 again when it would run off the
 * end) and makes it available; returns its head. */
uint16_t fx_add_chain(struct fx_vring *r, const struct fx_seg *s, unsigned int n);
/* The next used element, or NULL if the device has pushed nothing new. */
struct vring_used_elem *fx_take_used(struct fx_vring *r);
