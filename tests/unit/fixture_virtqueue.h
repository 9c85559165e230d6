/*
 * The split-virtqueue tests' set-up: one queue whose rings sit at fixed places in a fake 16 MiB
 * guest RAM, the driver's writers for it, and checks on what virtq_pop returned.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "fixture_guest_mem.h"
#include "fixture_vring.h"
#include "virtio/queue.h"

#define RAM_SIZE (16 * MiB)

#define DESC_GPA 0x1000ULL  /* up to 1024 * 16 bytes */
#define AVAIL_GPA 0x5000ULL /* up to 6 + 2 * 1024 bytes */
#define USED_GPA 0x6000ULL  /* up to 6 + 8 * 1024 bytes */
#define TABLE_GPA 0x10000ULL
#define BUF_GPA 0x100000ULL

#define F_INDIRECT (1ULL << VIRTIO_RING_F_INDIRECT_DESC)
#define F_EVENT_IDX (1ULL << VIRTIO_RING_F_EVENT_IDX)

extern struct virtqueue vq;
extern struct virtq_chain chain; /* too big for a test's stack frame */
extern struct fx_vring ring;	 /* the fake driver's side of vq */

/* Descriptor i of the queue's own table. */
void set_desc(unsigned int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
struct vring_avail *avail(void);
struct vring_used *used(void);
uint16_t *used_event(unsigned int size);
uint16_t *avail_event(unsigned int size);
/* Publishes head at the slot vq's current size gives it. */
void make_avail(uint16_t head);
/* The driver zeroes its rings and sets the queue up with size entries and features. */
void queue_up(unsigned int size, uint64_t features);
void mem_init(void);
void mem_fini(void);
/* The pop fails with e, the queue is broken and nothing was consumed. */
void expect_pop_error(enum virtq_error e);
void expect_seg(unsigned int i, uint64_t gpa, uint32_t len, bool writable);
