/*
 * hostile: a user-space virtio driver for the inner guest (tests/e2e/test_hostile_guest.sh), on
 * either transport. hostile_open.c takes a device away from Linux: a virtio-pci function through
 * sysfs (config space, BAR mmap), or a virtio-mmio window no driver claimed through /dev/mem.
 * hostile_dev.c drives it through one register layer (vreg_rd/vreg_wr: the transport is chosen
 * per device) with pinned memory of known guest-physical address; hostile.c and hostile_sweep.c
 * play the attacks.
 */
#ifndef KESTREL_E2E_HOSTILE_H
#define KESTREL_E2E_HOSTILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#define say(...) (printf("G: " __VA_ARGS__), putchar('\n'), fflush(stdout))

/* Offsets in the common configuration structure. */
#define CC(field) offsetof(struct virtio_pci_common_cfg, field)
#define STATUS_NEEDS_RESET 0x40
/* What the test host writes, repeated, into sector 0 of the attacked disk. */
#define SECTOR0_PATTERN "kestrel-hostile-sector0\n"

/* One mapped capability region of the device. */
struct region {
	volatile uint8_t *p; /* NULL when the device has none */
	uint32_t len;
	uint8_t bar;
	uint32_t off; /* offset inside the BAR, for the PCI_CFG window */
};

/* The registers both transports have, in transport-neutral terms (vreg_rd/vreg_wr). */
enum vreg {
	R_DEV_FEAT_SEL,
	R_DEV_FEAT,
	R_DRV_FEAT_SEL,
	R_DRV_FEAT,
	R_STATUS,
	R_QSEL,
	R_QSIZE_MAX, /* PCI: queue_size before the driver writes it; mmio: QueueNumMax */
	R_QSIZE,     /* mmio: QueueNum, write-only */
	R_QENABLE,
	R_QDESC_LO,
	R_QDESC_HI,
	R_QAVAIL_LO,
	R_QAVAIL_HI,
	R_QUSED_LO,
	R_QUSED_HI,
	R_CONFIG_VEC, /* PCI only (MSI-X vectors): no-ops on mmio */
	R_QVECTOR,
	R_COUNT
};

struct vdev {
	bool open;
	bool is_mmio;
	char bdf[32];		/* PCI address, or "mmio@0xADDR": names the device in messages */
	volatile uint8_t *regs; /* mmio: the 4 KiB window (registers, then config at 0x100) */
	uint64_t regs_gpa;
	int cfg_fd; /* /sys/bus/pci/devices/BDF/config */
	volatile uint8_t *bar[6];
	size_t bar_len[6];
	struct region common, isr, devcfg, notify;
	uint32_t notify_mult;
	unsigned int win;  /* config offset of the VIRTIO_PCI_CAP_PCI_CFG capability, 0: none */
	unsigned int msix; /* config offset of the MSI-X capability, 0: none */
	volatile uint8_t *msix_table, *msix_pba;
	unsigned int msix_n; /* table entries */
	size_t msix_room;    /* bytes mapped from the table start to the end of its BAR */
	uint16_t num_queues;
	uint64_t features; /* negotiated */
};

/* A split virtqueue in pinned memory. */
struct vq {
	uint16_t index, size, next_avail, last_used, free_head;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_gpa, avail_gpa, used_gpa;
};

/* Pinned memory: va and the guest-physical address of its first byte. */
struct dma {
	uint8_t *va;
	uint64_t gpa;
};

void die(const char *what);
double now(void);
uint64_t ram_end(void);

int dma_init(size_t bytes);
struct dma dma_alloc(size_t len, size_t align);

/* "BDF" opens a PCI function; "mmio" the first unclaimed LNRO0005 window of that device id
 * not yet opened (or "mmio@0xADDR" that window). */
int vdev_open(struct vdev *d, const char *spec, uint32_t device_id);
uint32_t cfg_read(struct vdev *d, unsigned int off, unsigned int size);
void cfg_write(struct vdev *d, unsigned int off, unsigned int size, uint32_t v);
uint32_t win_read(struct vdev *d, const struct region *r, uint32_t off, unsigned int size);
void win_write(struct vdev *d, const struct region *r, uint32_t off, unsigned int size, uint32_t v);
void msix_enable(struct vdev *d, bool on);

uint64_t mmio_read(volatile uint8_t *p, unsigned int size);
void mmio_write(volatile uint8_t *p, unsigned int size, uint64_t v);
#define rd8(r, o) ((uint8_t)mmio_read((r).p + (o), 1))
#define rd16(r, o) ((uint16_t)mmio_read((r).p + (o), 2))
#define rd32(r, o) ((uint32_t)mmio_read((r).p + (o), 4))
#define wr8(r, o, v) mmio_write((r).p + (o), 1, (v))
#define wr16(r, o, v) mmio_write((r).p + (o), 2, (v))
#define wr32(r, o, v) mmio_write((r).p + (o), 4, (v))

uint32_t vreg_rd(struct vdev *d, enum vreg r);
void vreg_wr(struct vdev *d, enum vreg r, uint32_t v);
/* An mmio window register at any offset and width (mmio devices only). */
#define mrd(d, o, w) mmio_read((d)->regs + (o), (w))
#define mwr(d, o, w, v) mmio_write((d)->regs + (o), (w), (v))

uint8_t vdev_status(struct vdev *d);
void vdev_set_status(struct vdev *d, uint8_t v);
bool vdev_reset(struct vdev *d);
bool vdev_negotiate(struct vdev *d, uint64_t want);
void vq_alloc(struct vq *q, uint16_t index, uint16_t size);
void vq_program(struct vdev *d, struct vq *q, uint16_t vector);
void vq_program_raw(struct vdev *d, uint16_t index, uint16_t size, uint64_t desc, uint64_t avail,
		    uint64_t used);
bool vq_enable(struct vdev *d, struct vq *q, uint16_t vector);
void vq_kick(struct vdev *d, uint16_t index);
uint16_t vq_add(struct vq *q, const uint64_t *gpa, const uint32_t *len, const uint16_t *flags,
		int n);
int vq_wait(struct vq *q, uint16_t want, double secs);

/* virtio-blk helpers: a one-queue bring-up and a read of one sector. */
bool blk_up(struct vdev *d, struct vq *q, uint64_t extra_features, uint16_t vector);
void blk_post_read(struct vq *q, uint64_t sector, struct dma buf, uint32_t len);
extern volatile uint8_t *blk_last_status; /* of the last request posted */
bool blk_sector0_ok(struct vdev *d);
bool net_up(struct vdev *d, struct vq *rx, struct vq *tx, uint64_t features, uint16_t vector);
void net_post_tx(struct vq *tx);
bool net_tx_ok(struct vdev *d);

/* The attacks shared between hostile.c and hostile_sweep.c. */
#define NOVEC VIRTIO_MSI_NO_VECTOR
#define ST_UP                                                                                      \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |      \
	 VIRTIO_CONFIG_S_DRIVER_OK)
extern struct vdev blk, net;
void msix_past_table(struct vdev *d);
void atk_sweep(void);

#endif
