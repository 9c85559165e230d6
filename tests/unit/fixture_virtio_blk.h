/*
 * virtio-blk against a hand-written driver: requests are built as descriptor chains in a fake
 * 16 MiB guest RAM, kicked through the device's ops table, and checked in the used ring, the
 * status byte and the image file. The request tests run once per engine (sync, io_uring); the
 * blk_mem suite checks which engine an image in /dev/shm gets.
 */
#pragma once

#include <linux/virtio_blk.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fixture_guest_mem.h"
#include "fixture_transport.h"
#include "fixture_vring.h"
#include "virtio/blk.h"
#include "vmm/event_loop.h"

#define RAM_SIZE (16 * MiB)
#define QSIZE 256

#define DESC_GPA 0x1000ULL  /* 256 * 16 bytes */
#define AVAIL_GPA 0x3000ULL /* 6 + 2 * 256 */
#define USED_GPA 0x4000ULL  /* 6 + 8 * 256 */
#define TABLE_GPA 0x10000ULL
#define HDR_GPA 0x100000ULL    /* 64 bytes per request slot */
#define STATUS_GPA 0x180000ULL /* 1 byte per request slot */
#define DATA_GPA 0x200000ULL   /* 4 MiB of data buffers */
#define DATA2_GPA 0x800000ULL

#define IMG_SIZE (1 * MiB)
#define IMG_SECTORS (IMG_SIZE / 512)

extern struct event_loop loop;
extern struct virtio_dev *dev;
extern char img_path[64];
extern int img_fd;	   /* the test's own view of the image */
extern struct fx_vring rq; /* the driver's side of queue 0 */
extern unsigned int slot;  /* the next request's header and status slot */
extern const char *engine;

struct req {
	uint16_t head;
	uint64_t status_gpa;
};

/* ---- the driver ---- */

struct vring_avail *avail(void);
struct vring_used *used(void);
uint16_t used_idx(void);
void make_avail(uint16_t head);
/* Puts a chain of n buffers in the descriptor table and makes it available; returns the head. */
uint16_t add_chain(const struct fx_seg *s, unsigned int n);
uint64_t put_hdr(uint32_t type, uint64_t sector);
/* header | data (readable for writes, writable for reads) | status */
struct req req_data(uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t len,
		    bool data_writable);
struct req req_range(uint32_t type, uint64_t sector, uint32_t num, uint32_t flags);
void kick(void);
/* Kicks queue 0 and waits until the engine is idle. */
void run(void);
uint8_t status_of(struct req r);
/* The next used element, which must be for r; returns its length. */
uint32_t expect_used(struct req r, uint8_t status);

/* ---- the image ---- */

/* What the image holds at each offset before any test writes it. */
uint8_t pattern(uint64_t off);
void file_read(uint64_t off, void *buf, size_t len);
/* The bytes at [off, off + len) are zero, or the original pattern. */
bool file_is(uint64_t off, size_t len, bool zero);

/* ---- setup ---- */

/* An image of size bytes holding pattern(), in dir. */
void make_image_in(const char *dir, uint64_t size);
int create(const struct blk_options *o, struct virtio_dev **out, struct kerr *err);
/* Negotiates everything offered and enables queue 0. */
void bring_up(void);
/* Creates the device on engine eng and brings it up (io_uring unavailable: the test skips).
 * ENGINE_AUTO leaves KESTREL_BLK_ENGINE unset, so the device picks. */
void start_dev(const char *eng, bool readonly);
#define ENGINE_AUTO "auto"
void suite_init(void);
/* The same with the image in /dev/shm (tmpfs). */
void suite_init_mem(void);
void suite_fini(void);

/* Each request test runs on both engines, read-write. */
#define BOTH(name)                                                                                 \
	static void name(void);                                                                    \
	Test(blk_sync, name)                                                                       \
	{                                                                                          \
		start_dev("sync", false);                                                          \
		name();                                                                            \
	}                                                                                          \
	Test(blk_uring, name)                                                                      \
	{                                                                                          \
		start_dev("io_uring", false);                                                      \
		name();                                                                            \
	}                                                                                          \
	static void name(void)
