/*
 * hostile_dev.c: the driver half of tests/e2e/hostile — one register layer over both transports
 * (the device was opened by hostile_open.c), the virtio lifecycle, queues in pinned memory whose
 * guest-physical addresses come from /proc/self/pagemap. Every wait is bounded: a device that
 * stops answering must not hang the test, only fail it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "hostile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>

#define PAGE 4096UL
#define HUGE (2UL << 20)

void die(const char *what)
{
	printf("G: FATAL %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The end of the highest "System RAM" range in /proc/iomem (root sees real addresses). */
uint64_t ram_end(void)
{
	FILE *f = fopen("/proc/iomem", "r");
	char line[256];
	uint64_t end = 0;

	if (!f)
		die("/proc/iomem");
	while (fgets(line, sizeof(line), f)) {
		uint64_t a, b;
		if (line[0] != ' ' && strstr(line, "System RAM") &&
		    sscanf(line, "%" SCNx64 "-%" SCNx64, &a, &b) == 2 && b + 1 > end)
			end = b + 1;
	}
	fclose(f);
	return end;
}

/* ---- pinned memory ---- */

static uint8_t *arena;
static uint64_t *arena_pfn; /* per page */
static size_t arena_len, arena_pos;

int dma_init(size_t bytes)
{
	uint8_t *raw;
	int fd;

	/* 2 MiB aligned and THP-advised: big rings (1024 entries) need contiguous pages. */
	raw = mmap(NULL, bytes + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap arena");
	arena = (uint8_t *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	arena_len = bytes;
	if (madvise(arena, bytes, MADV_HUGEPAGE))
		say("madvise(MADV_HUGEPAGE) failed: %s", strerror(errno));
	if (mlock(arena, bytes))
		die("mlock arena");
	memset(arena, 0, bytes);
	arena_pfn = calloc(bytes / PAGE, sizeof(uint64_t));
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (!arena_pfn || fd < 0)
		die("pagemap");
	for (size_t i = 0; i < bytes / PAGE; i++) {
		uint64_t e;
		off_t off = (off_t)(((uintptr_t)arena / PAGE + i) * sizeof(e));
		if (pread(fd, &e, sizeof(e), off) != sizeof(e))
			die("pagemap read");
		if (!(e >> 63) || !(e & ((1ULL << 55) - 1))) {
			errno = EPERM; /* not present, or PFNs hidden: not root */
			die("pagemap entry");
		}
		arena_pfn[i] = e & ((1ULL << 55) - 1);
	}
	close(fd);
	return 0;
}

/* len bytes, aligned, on pages that are contiguous in guest-physical memory too. */
struct dma dma_alloc(size_t len, size_t align)
{
	size_t pos = arena_pos;

	for (;;) {
		size_t first, last, i;
		pos = (pos + align - 1) & ~(align - 1);
		if (pos + len > arena_len) {
			errno = ENOMEM;
			die("dma_alloc");
		}
		first = pos / PAGE;
		last = (pos + len - 1) / PAGE;
		for (i = first; i < last && arena_pfn[i + 1] == arena_pfn[i] + 1; i++)
			;
		if (i == last) {
			struct dma d = {arena + pos, arena_pfn[first] * PAGE + pos % PAGE};
			arena_pos = pos + len;
			memset(d.va, 0, len);
			return d;
		}
		pos = (i + 1) * PAGE; /* restart after the break */
	}
}

/* ---- registers ---- */

uint64_t mmio_read(volatile uint8_t *p, unsigned int size)
{
	switch (size) {
	case 1:
		return *p;
	case 2:
		return *(volatile uint16_t *)p;
	case 4:
		return *(volatile uint32_t *)p;
	default:
		return *(volatile uint64_t *)p;
	}
}

void mmio_write(volatile uint8_t *p, unsigned int size, uint64_t v)
{
	switch (size) {
	case 1:
		*p = (uint8_t)v;
		break;
	case 2:
		*(volatile uint16_t *)p = (uint16_t)v;
		break;
	case 4:
		*(volatile uint32_t *)p = (uint32_t)v;
		break;
	default:
		*(volatile uint64_t *)p = v;
		break;
	}
}

/* ---- one register layer for both transports ---- */

/* Where each register lives: PCI common-config offset and width; mmio offset (-1: none). */
static const struct {
	int16_t pci, mmio;
	uint8_t pci_w;
} regmap[R_COUNT] = {
    [R_DEV_FEAT_SEL] = {CC(device_feature_select), VIRTIO_MMIO_DEVICE_FEATURES_SEL, 4},
    [R_DEV_FEAT] = {CC(device_feature), VIRTIO_MMIO_DEVICE_FEATURES, 4},
    [R_DRV_FEAT_SEL] = {CC(guest_feature_select), VIRTIO_MMIO_DRIVER_FEATURES_SEL, 4},
    [R_DRV_FEAT] = {CC(guest_feature), VIRTIO_MMIO_DRIVER_FEATURES, 4},
    [R_STATUS] = {CC(device_status), VIRTIO_MMIO_STATUS, 1},
    [R_QSEL] = {CC(queue_select), VIRTIO_MMIO_QUEUE_SEL, 2},
    [R_QSIZE_MAX] = {CC(queue_size), VIRTIO_MMIO_QUEUE_NUM_MAX, 2},
    [R_QSIZE] = {CC(queue_size), VIRTIO_MMIO_QUEUE_NUM, 2},
    [R_QENABLE] = {CC(queue_enable), VIRTIO_MMIO_QUEUE_READY, 2},
    [R_QDESC_LO] = {CC(queue_desc_lo), VIRTIO_MMIO_QUEUE_DESC_LOW, 4},
    [R_QDESC_HI] = {CC(queue_desc_hi), VIRTIO_MMIO_QUEUE_DESC_HIGH, 4},
    [R_QAVAIL_LO] = {CC(queue_avail_lo), VIRTIO_MMIO_QUEUE_AVAIL_LOW, 4},
    [R_QAVAIL_HI] = {CC(queue_avail_hi), VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 4},
    [R_QUSED_LO] = {CC(queue_used_lo), VIRTIO_MMIO_QUEUE_USED_LOW, 4},
    [R_QUSED_HI] = {CC(queue_used_hi), VIRTIO_MMIO_QUEUE_USED_HIGH, 4},
    [R_CONFIG_VEC] = {CC(msix_config), -1, 2},
    [R_QVECTOR] = {CC(queue_msix_vector), -1, 2},
};

/* virtio-mmio control registers are all 32 bits wide (VIRTIO 1.2 §4.2.2). */
uint32_t vreg_rd(struct vdev *d, enum vreg r)
{
	if (!d->is_mmio)
		return (uint32_t)mmio_read(d->common.p + regmap[r].pci, regmap[r].pci_w);
	return regmap[r].mmio < 0 ? 0 : (uint32_t)mrd(d, regmap[r].mmio, 4);
}

void vreg_wr(struct vdev *d, enum vreg r, uint32_t v)
{
	if (!d->is_mmio)
		mmio_write(d->common.p + regmap[r].pci, regmap[r].pci_w, v);
	else if (regmap[r].mmio >= 0)
		mwr(d, regmap[r].mmio, 4, v);
}

/* ---- the virtio lifecycle, done by the book ---- */

uint8_t vdev_status(struct vdev *d)
{
	return (uint8_t)vreg_rd(d, R_STATUS);
}

void vdev_set_status(struct vdev *d, uint8_t v)
{
	vreg_wr(d, R_STATUS, v);
}

/* Write 0 and wait (bounded) until the device reads back 0, as VIRTIO 1.2 §4.1.4.3.2 asks. */
bool vdev_reset(struct vdev *d)
{
	double end = now() + 5;

	vdev_set_status(d, 0);
	while (vdev_status(d) != 0)
		if (now() > end)
			return false;
	return true;
}

bool vdev_negotiate(struct vdev *d, uint64_t want)
{
	uint64_t dev;

	if (!vdev_reset(d))
		say("RESET-TIMEOUT status=0x%x", vdev_status(d));
	vdev_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	vdev_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	vreg_wr(d, R_DEV_FEAT_SEL, 0);
	dev = vreg_rd(d, R_DEV_FEAT);
	vreg_wr(d, R_DEV_FEAT_SEL, 1);
	dev |= (uint64_t)vreg_rd(d, R_DEV_FEAT) << 32;
	d->features = dev & (want | (1ULL << VIRTIO_F_VERSION_1));
	vreg_wr(d, R_DRV_FEAT_SEL, 0);
	vreg_wr(d, R_DRV_FEAT, (uint32_t)d->features);
	vreg_wr(d, R_DRV_FEAT_SEL, 1);
	vreg_wr(d, R_DRV_FEAT, (uint32_t)(d->features >> 32));
	vdev_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			       VIRTIO_CONFIG_S_FEATURES_OK);
	vreg_wr(d, R_CONFIG_VEC, VIRTIO_MSI_NO_VECTOR);
	return vdev_status(d) & VIRTIO_CONFIG_S_FEATURES_OK;
}

void vq_alloc(struct vq *q, uint16_t index, uint16_t size)
{
	if (!q->desc || q->size != size) {
		struct dma d = dma_alloc(16UL * size, PAGE);
		struct dma a = dma_alloc(6 + 2UL * size, PAGE);
		struct dma u = dma_alloc(6 + 8UL * size, PAGE);
		q->desc = (void *)d.va, q->desc_gpa = d.gpa;
		q->avail = (void *)a.va, q->avail_gpa = a.gpa;
		q->used = (void *)u.va, q->used_gpa = u.gpa;
	}
	q->index = index;
	q->size = size;
	q->next_avail = q->last_used = q->free_head = 0;
	memset(q->desc, 0, 16UL * size);
	memset(q->avail, 0, 6 + 2UL * size);
	memset((void *)q->used, 0, 6 + 8UL * size);
}

/* Queue registers, without enabling. */
void vq_program(struct vdev *d, struct vq *q, uint16_t vector)
{
	vq_program_raw(d, q->index, q->size, q->desc_gpa, q->avail_gpa, q->used_gpa);
	vreg_wr(d, R_QVECTOR, vector);
}

/* Queue registers with any values (the sweep's rings outside RAM go through here too). */
void vq_program_raw(struct vdev *d, uint16_t index, uint16_t size, uint64_t desc, uint64_t avail,
		    uint64_t used)
{
	vreg_wr(d, R_QSEL, index);
	vreg_wr(d, R_QSIZE, size);
	vreg_wr(d, R_QDESC_LO, (uint32_t)desc);
	vreg_wr(d, R_QDESC_HI, (uint32_t)(desc >> 32));
	vreg_wr(d, R_QAVAIL_LO, (uint32_t)avail);
	vreg_wr(d, R_QAVAIL_HI, (uint32_t)(avail >> 32));
	vreg_wr(d, R_QUSED_LO, (uint32_t)used);
	vreg_wr(d, R_QUSED_HI, (uint32_t)(used >> 32));
}

bool vq_enable(struct vdev *d, struct vq *q, uint16_t vector)
{
	vq_program(d, q, vector);
	vreg_wr(d, R_QENABLE, 1);
	return vreg_rd(d, R_QENABLE) == 1;
}

/* mmio: QueueNotify takes the index; PCI: the queue's own notify address. */
void vq_kick(struct vdev *d, uint16_t index)
{
	uint16_t off;

	if (d->is_mmio) {
		mwr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 4, index);
		return;
	}
	wr16(d->common, CC(queue_select), index);
	off = rd16(d->common, CC(queue_notify_off));
	if ((uint64_t)off * d->notify_mult + 2 <= d->notify.len)
		wr16(d->notify, (uint32_t)off * d->notify_mult, index);
}

/* Chain n buffers (flags: VRING_DESC_F_WRITE etc.) and publish the head; returns it. */
uint16_t vq_add(struct vq *q, const uint64_t *gpa, const uint32_t *len, const uint16_t *flags,
		int n)
{
	uint16_t head = q->free_head % q->size;

	for (int i = 0; i < n; i++) {
		uint16_t k = (uint16_t)((head + i) % q->size);
		q->desc[k].addr = gpa[i];
		q->desc[k].len = len[i];
		q->desc[k].flags = flags[i] | (i + 1 < n ? VRING_DESC_F_NEXT : 0);
		q->desc[k].next = (uint16_t)((k + 1) % q->size);
	}
	q->free_head = (uint16_t)(q->free_head + n);
	q->avail->ring[q->next_avail % q->size] = head;
	__sync_synchronize(); /* descriptors before the index the device reads */
	q->next_avail++;
	*(volatile uint16_t *)&q->avail->idx = q->next_avail;
	__sync_synchronize();
	return head;
}

/* Wait up to secs for `want` more used entries; returns how many arrived. */
int vq_wait(struct vq *q, uint16_t want, double secs)
{
	double end = now() + secs;
	uint16_t got;

	do {
		got = (uint16_t)(*(volatile uint16_t *)&q->used->idx - q->last_used);
		if (got >= want)
			break;
		usleep(1000);
	} while (now() < end);
	q->last_used = (uint16_t)(q->last_used + got);
	return got;
}

/* ---- virtio-blk and virtio-net, the clean way ---- */

static uint16_t queue_max(struct vdev *d, uint16_t index)
{
	uint16_t max;

	vreg_wr(d, R_QSEL, index);
	max = (uint16_t)vreg_rd(d, R_QSIZE_MAX);
	return max > 256 || max == 0 ? 256 : max;
}

bool blk_up(struct vdev *d, struct vq *q, uint64_t extra_features, uint16_t vector)
{
	if (!vdev_negotiate(d, extra_features))
		return false;
	vq_alloc(q, 0, queue_max(d, 0));
	if (!vq_enable(d, q, vector))
		return false;
	vdev_set_status(d, vdev_status(d) | VIRTIO_CONFIG_S_DRIVER_OK);
	return vdev_status(d) == (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				  VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* A read request: header, data (device-writable), status byte; headers live in a ring of
 * their own so that many can be in flight. */
void blk_post_read(struct vq *q, uint64_t sector, struct dma buf, uint32_t len)
{
	static struct dma hdrs;
	static unsigned int slot;
	struct virtio_blk_outhdr *h;
	uint64_t gpa[3];
	uint32_t lens[3] = {sizeof(*h), len, 1};
	uint16_t flags[3] = {0, VRING_DESC_F_WRITE, VRING_DESC_F_WRITE};

	if (!hdrs.va)
		hdrs = dma_alloc(32 * 1024, PAGE);
	slot = (slot + 1) % 1024;
	h = (void *)(hdrs.va + 32 * slot);
	h->type = VIRTIO_BLK_T_IN;
	h->ioprio = 0;
	h->sector = sector;
	hdrs.va[32 * slot + 16] = 0xff; /* status: the device overwrites it */
	gpa[0] = hdrs.gpa + 32 * slot;
	gpa[1] = buf.gpa;
	gpa[2] = hdrs.gpa + 32 * slot + 16;
	vq_add(q, gpa, lens, flags, 3);
	blk_last_status = &hdrs.va[32 * slot + 16];
}

volatile uint8_t *blk_last_status;

/* Full reset, clean bring-up, read sector 0: the bytes the test host wrote there? */
bool blk_sector0_ok(struct vdev *d)
{
	static struct vq q;
	static struct dma buf;
	const char *pat = SECTOR0_PATTERN;
	size_t n = strlen(pat);

	if (!buf.va)
		buf = dma_alloc(512, 512);
	memset(buf.va, 0, 512);
	if (!blk_up(d, &q, 0, VIRTIO_MSI_NO_VECTOR)) {
		say("BLK-UP-FAILED status=0x%x", vdev_status(d));
		return false;
	}
	blk_post_read(&q, 0, buf, 512);
	vq_kick(d, 0);
	if (vq_wait(&q, 1, 10) != 1) {
		say("BLK-READ-TIMEOUT status=0x%x", vdev_status(d));
		return false;
	}
	for (size_t i = 0; i < 512; i++)
		if (buf.va[i] != (uint8_t)pat[i % n] || *blk_last_status != 0) {
			say("BLK-READ-MISMATCH byte %zu status %u", i, *blk_last_status);
			return false;
		}
	return true;
}

bool net_up(struct vdev *d, struct vq *rx, struct vq *tx, uint64_t features, uint16_t vector)
{
	if (!vdev_negotiate(d, features))
		return false;
	vq_alloc(rx, 0, queue_max(d, 0));
	vq_alloc(tx, 1, queue_max(d, 1));
	if (!vq_enable(d, rx, vector) || !vq_enable(d, tx, vector))
		return false;
	vdev_set_status(d, vdev_status(d) | VIRTIO_CONFIG_S_DRIVER_OK);
	return !(vdev_status(d) & STATUS_NEEDS_RESET);
}

/* One broadcast frame of a local-experimental ethertype behind a zero virtio-net header. */
void net_post_tx(struct vq *tx)
{
	static struct dma pkt;
	uint64_t gpa;
	uint32_t len = 12 + 60;
	uint16_t flags = 0;

	if (!pkt.va) {
		pkt = dma_alloc(len, 64);
		memset(pkt.va + 12, 0xff, 6);
		memcpy(pkt.va + 18, "\x52\x54\x00\x77\x00\x02\x88\xb5", 8);
	}
	gpa = pkt.gpa;
	vq_add(tx, &gpa, &len, &flags, 1);
}

bool net_tx_ok(struct vdev *d)
{
	static struct vq rx, tx;

	if (!net_up(d, &rx, &tx, 0, VIRTIO_MSI_NO_VECTOR)) {
		say("NET-UP-FAILED status=0x%x", vdev_status(d));
		return false;
	}
	net_post_tx(&tx);
	vq_kick(d, 1);
	if (vq_wait(&tx, 1, 10) != 1) {
		say("NET-TX-TIMEOUT status=0x%x", vdev_status(d));
		return false;
	}
	return true;
}
