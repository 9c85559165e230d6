/*
 * hostile_sweep.c: the sweep attack of tests/e2e/hostile, on the attacked disk (and the NIC for
 * the register widths), on either transport: odd status orders, queue selects out of range, queue
 * sizes 0/3/2048/65535, rings at and beyond the end of RAM, descriptors outside RAM, loops, odd
 * indirect tables, notifies on missing queues, every access width on every register offset
 * (PCI: common/ISR/device/notify and MSI-X past the table; mmio: the whole 4 KiB window with its
 * config space), and on mmio the register-file abuses the spec forbids: reads of write-only
 * registers, writes of read-only ones, QueueReady on an unset queue, writes before FEATURES_OK.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "hostile.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Bring-up up to FEATURES_OK, then queue 0 with the given ring addresses and size. */
static void raw_queue(struct vq *q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	vdev_negotiate(&blk, 1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	vq_program_raw(&blk, 0, size, desc, avail, used);
	vreg_wr(&blk, R_QENABLE, 1);
	vdev_set_status(&blk, ST_UP);
	if (q) {
		q->next_avail++;
		q->avail->ring[0] = 0;
		*(volatile uint16_t *)&q->avail->idx = q->next_avail;
	}
	vq_kick(&blk, 0);
	usleep(20000);
}

/* Publish descriptor head 0 after the caller wrote q->desc by hand, and give it a moment. */
static void publish0(struct vq *q, const char *what)
{
	q->avail->ring[q->next_avail % q->size] = 0;
	__sync_synchronize();
	q->next_avail++;
	*(volatile uint16_t *)&q->avail->idx = q->next_avail;
	vq_kick(&blk, 0);
	say("SWEEP %s: used=%d status=0x%x", what, vq_wait(q, 1, 0.3), vdev_status(&blk));
}

static void desc_set(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	d->addr = addr, d->len = len, d->flags = flags, d->next = next;
}

static const uint64_t pats[] = {~0ULL, 0x0101010101010101ULL, 0x5a5a5a5a5a5a5a5aULL};

/* Every width at every offset of [p, p+len), reads then each pattern; room: bytes mapped. */
static unsigned long sweep_range(volatile uint8_t *p, size_t len, size_t room)
{
	unsigned long n = 0;

	for (int pat = -1; pat < 3; pat++)
		for (uint32_t off = 0; off < len; off++)
			for (unsigned int w = 1; w <= 8; w *= 2, n++) {
				if (off + w > room)
					continue; /* straddling the end is fine, leaving it is not
						   */
				if (pat < 0)
					(void)mmio_read(p + off, w);
				else
					mmio_write(p + off, w, pats[pat]);
			}
	return n;
}

static void sweep_registers(struct vdev *d)
{
	const struct region *rs[] = {&d->common, &d->isr, &d->devcfg, &d->notify};
	unsigned long n = 0;

	if (d->is_mmio) {
		n = sweep_range(d->regs, 4096, 4096);
	} else {
		for (unsigned int i = 0; i < 4; i++)
			if (rs[i]->p)
				n += sweep_range(rs[i]->p, rs[i]->len,
						 d->bar_len[rs[i]->bar] - rs[i]->off);
	}
	say("SWEEP %s widths: %lu accesses, status=0x%x", d->bdf, n, vdev_status(d));
}

/* mmio: what the spec says a driver must not do with the register file. */
static void sweep_mmio_registers(struct vq *q)
{
	static const uint16_t ro[] = {VIRTIO_MMIO_MAGIC_VALUE,
				      VIRTIO_MMIO_VERSION,
				      VIRTIO_MMIO_DEVICE_ID,
				      VIRTIO_MMIO_VENDOR_ID,
				      VIRTIO_MMIO_DEVICE_FEATURES,
				      VIRTIO_MMIO_QUEUE_NUM_MAX,
				      VIRTIO_MMIO_INTERRUPT_STATUS,
				      VIRTIO_MMIO_CONFIG_GENERATION,
				      0x028 /* legacy GuestPageSize */,
				      0x03c /* legacy QueueAlign */,
				      0x040 /* legacy QueuePFN */};
	static const uint16_t wo[] = {VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES,
				      VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_SEL,
				      VIRTIO_MMIO_QUEUE_NUM,	       VIRTIO_MMIO_QUEUE_NOTIFY,
				      VIRTIO_MMIO_INTERRUPT_ACK,       VIRTIO_MMIO_QUEUE_DESC_LOW,
				      VIRTIO_MMIO_QUEUE_DESC_HIGH,     VIRTIO_MMIO_QUEUE_AVAIL_LOW,
				      VIRTIO_MMIO_QUEUE_AVAIL_HIGH,    VIRTIO_MMIO_QUEUE_USED_LOW,
				      VIRTIO_MMIO_QUEUE_USED_HIGH,     VIRTIO_MMIO_SHM_SEL};
	uint32_t nonzero = 0;
	unsigned int i;

	/* Writes before FEATURES_OK: queue set-up and DRIVER_OK must not take. */
	vdev_reset(&blk);
	vdev_set_status(&blk, 3);
	vq_alloc(q, 0, 256);
	vq_program(&blk, q, NOVEC);
	vreg_wr(&blk, R_QENABLE, 1);
	say("SWEEP mmio queue before FEATURES_OK: ready=%u status=0x%x", vreg_rd(&blk, R_QENABLE),
	    vdev_status(&blk));
	vdev_set_status(&blk, 3 | VIRTIO_CONFIG_S_DRIVER_OK);
	say("SWEEP mmio DRIVER_OK before FEATURES_OK: status=0x%x", vdev_status(&blk));

	/* QueueReady on a queue nobody programmed (addresses 0), and on missing ones. */
	vdev_negotiate(&blk, 0);
	for (uint32_t sel = 0; sel <= 0x10000; sel = sel ? sel * 2 : blk.num_queues) {
		vreg_wr(&blk, R_QSEL, sel);
		vreg_wr(&blk, R_QENABLE, 1);
		vreg_wr(&blk, R_QENABLE, 0);
		vreg_wr(&blk, R_QENABLE, 0xffffffff);
	}
	vreg_wr(&blk, R_QSEL, 0);
	say("SWEEP mmio QueueReady on unset queues: ready0=%u status=0x%x",
	    vreg_rd(&blk, R_QENABLE), vdev_status(&blk));

	/* Write-only registers read back, after the driver wrote them. */
	vdev_negotiate(&blk, 0);
	vq_program(&blk, q, NOVEC);
	for (i = 0; i < sizeof(wo) / sizeof(wo[0]); i++)
		nonzero += mrd(&blk, wo[i], 4) != 0;
	say("SWEEP mmio write-only reads: %u of %zu non-zero", nonzero, sizeof(wo) / sizeof(wo[0]));

	/* Read-only registers written: identity and the queue maximum must not change. */
	for (int pat = 0; pat < 3; pat++)
		for (i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
			mwr(&blk, ro[i], 4, pats[pat]);
	vreg_wr(&blk, R_QSEL, 0);
	say("SWEEP mmio read-only writes: magic=0x%x version=%u id=%u qmax=%u status=0x%x",
	    (unsigned int)mrd(&blk, VIRTIO_MMIO_MAGIC_VALUE, 4),
	    (unsigned int)mrd(&blk, VIRTIO_MMIO_VERSION, 4),
	    (unsigned int)mrd(&blk, VIRTIO_MMIO_DEVICE_ID, 4), vreg_rd(&blk, R_QSIZE_MAX),
	    vdev_status(&blk));
}

/* Queue 0 with the given size then read what the device made of it (mmio: QueueNum is
 * write-only, so only QueueReady tells). */
static void sweep_sizes(struct vq *q)
{
	const uint16_t sizes[] = {0, 1, 3, 2048, 65535};

	for (unsigned int i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		vq_alloc(q, 0, 256);
		raw_queue(q, sizes[i], q->desc_gpa, q->avail_gpa, q->used_gpa);
		vreg_wr(&blk, R_QSEL, 0);
		say("SWEEP queue-size %u: size-read=%u enable=%u status=0x%x", sizes[i],
		    vreg_rd(&blk, R_QSIZE), vreg_rd(&blk, R_QENABLE), vdev_status(&blk));
	}
}

static void sweep_chains(struct vq *q, const uint64_t *bad, uint64_t end)
{
	struct dma ind = dma_alloc(4096, 4096), buf = dma_alloc(4096, 4096);

	/* Descriptor chains; each round starts from a clean device. */
	for (unsigned int i = 0; i < 12; i++) {
		uint64_t bad_addr = bad[i % 7];
		const char *what;
		if (!blk_up(&blk, q, 1ULL << VIRTIO_RING_F_INDIRECT_DESC, NOVEC))
			say("SWEEP bring-up failed status=0x%x", vdev_status(&blk));
		/* A sane header in buf, the status byte at buf+16, data at buf+512. */
		memset(buf.va, 0, 32);
		desc_set(&q->desc[0], buf.gpa, 16, VRING_DESC_F_NEXT, 1);
		desc_set(&q->desc[1], buf.gpa + 512, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
			 2);
		desc_set(&q->desc[2], buf.gpa + 16, 1, VRING_DESC_F_WRITE, 0);
		switch (i) {
		case 0:
			what = "header outside RAM";
			q->desc[0].addr = bad_addr;
			break;
		case 1:
			what = "data across the end of RAM";
			desc_set(&q->desc[1], end - 256, 4096, 3, 2);
			break;
		case 2:
			what = "data address wraps";
			desc_set(&q->desc[1], ~0ULL - 8, 64, 3, 2);
			break;
		case 3:
			what = "status outside RAM";
			q->desc[2].addr = bad[3];
			break;
		case 4:
			what = "loop 0-1-0";
			desc_set(&q->desc[1], buf.gpa + 512, 512, 3, 0);
			break;
		case 5:
			what = "self loop";
			q->desc[0].next = 0;
			break;
		case 6:
			what = "next out of range";
			q->desc[1].next = 4000;
			break;
		case 7: /* indirect table whose entry is itself indirect */
			what = "nested indirect";
			desc_set((void *)ind.va, ind.gpa, 64, VRING_DESC_F_INDIRECT, 0);
			desc_set(&q->desc[0], ind.gpa, 16, VRING_DESC_F_INDIRECT, 0);
			break;
		case 8:
			what = "zero-length indirect";
			desc_set(&q->desc[0], ind.gpa, 0, VRING_DESC_F_INDIRECT, 0);
			break;
		case 9:
			what = "huge indirect";
			desc_set(&q->desc[0], ind.gpa, 0xfffffff0, VRING_DESC_F_INDIRECT, 0);
			break;
		case 10:
			what = "indirect length 17, outside RAM";
			desc_set(&q->desc[0], end - 8, 17, VRING_DESC_F_INDIRECT, 0);
			break;
		default: /* a loop inside an indirect table, and INDIRECT|NEXT */
			what = "indirect loop";
			desc_set((void *)ind.va, buf.gpa, 16, VRING_DESC_F_NEXT, 1);
			desc_set((void *)(ind.va + 16), buf.gpa + 512, 16, VRING_DESC_F_NEXT, 0);
			desc_set(&q->desc[0], ind.gpa, 32,
				 VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
			break;
		}
		publish0(q, what);
	}
}

/* Notifies naming queues that do not exist (PCI: at every notify address too). */
static void notify_missing(struct vq *q)
{
	blk_up(&blk, q, 0, NOVEC);
	for (uint32_t qi = 1; qi <= 0x10000; qi = qi * 4) {
		if (blk.is_mmio) {
			mwr(&blk, VIRTIO_MMIO_QUEUE_NOTIFY, 4, qi);
			mwr(&blk, VIRTIO_MMIO_QUEUE_NOTIFY, 2, qi);
			continue;
		}
		wr16(blk.notify, 0, (uint16_t)qi);
		if ((uint64_t)qi * blk.notify_mult + 2 <= blk.notify.len)
			wr16(blk.notify, qi * blk.notify_mult, (uint16_t)qi);
	}
	say("SWEEP notifies on missing queues: status=0x%x", vdev_status(&blk));
}

void atk_sweep(void)
{
	static struct vq q;
	static const uint8_t orders[][4] = {{VIRTIO_CONFIG_S_DRIVER_OK},
					    {VIRTIO_CONFIG_S_FEATURES_OK},
					    {0xff},
					    {0x80},
					    {0x40},
					    {1, VIRTIO_CONFIG_S_DRIVER_OK},
					    {1, 3, 3 | VIRTIO_CONFIG_S_DRIVER_OK},
					    {ST_UP, 1, ST_UP},
					    {1, 3, 0x0b, 0x0f},
					    {ST_UP, 0x40 | ST_UP, 0x80}};
	const uint64_t end = ram_end();
	const uint64_t bad[] = {
	    end - 16, end - 4096, end, end + 4096, 1ULL << 40, 0xfffffffffffff000ULL, ~0ULL - 15};
	unsigned int i, k;

	say("SWEEP ram-end=0x%llx", (unsigned long long)end);
	for (i = 0; i < sizeof(orders) / sizeof(orders[0]); i++) {
		vdev_reset(&blk);
		for (k = 0; k < 4 && orders[i][k]; k++)
			vdev_set_status(&blk, orders[i][k]);
		say("SWEEP status-order %u: status=0x%x", i, vdev_status(&blk));
	}
	/* All feature bits, then FEATURES_OK. */
	vdev_reset(&blk);
	vdev_set_status(&blk, 3);
	for (k = 0; k < 4; k++) {
		vreg_wr(&blk, R_DRV_FEAT_SEL, k);
		vreg_wr(&blk, R_DRV_FEAT, ~0u);
	}
	vdev_set_status(&blk, 0x0b);
	say("SWEEP all-features: status=0x%x", vdev_status(&blk));

	vdev_negotiate(&blk, 0);
	for (uint32_t sel = blk.num_queues; sel <= 0x10000; sel = sel * 2 + 1) {
		vreg_wr(&blk, R_QSEL, sel);
		for (k = R_QSIZE_MAX; k <= R_QUSED_HI; k++)
			(void)vreg_rd(&blk, (enum vreg)k);
		vq_alloc(&q, (uint16_t)sel, 256);
		vq_enable(&blk, &q, 0);
		if (!blk.is_mmio && (uint64_t)sel * blk.notify_mult + 2 <= blk.notify.len)
			wr16(blk.notify, sel * blk.notify_mult, (uint16_t)sel);
		else if (blk.is_mmio)
			vq_kick(&blk, (uint16_t)sel);
	}
	say("SWEEP queue-select out of range: status=0x%x", vdev_status(&blk));

	sweep_sizes(&q);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		raw_queue(NULL, 256, bad[i], q.avail_gpa, q.used_gpa);
		raw_queue(NULL, 256, q.desc_gpa, bad[i], q.used_gpa);
		raw_queue(NULL, 256, q.desc_gpa, q.avail_gpa, bad[i]);
		say("SWEEP rings at 0x%llx: status=0x%x", (unsigned long long)bad[i],
		    vdev_status(&blk));
	}
	sweep_chains(&q, bad, end);
	notify_missing(&q);
	if (blk.is_mmio)
		sweep_mmio_registers(&q);
	sweep_registers(&blk);
	if (net.open)
		sweep_registers(&net);
	if (blk.msix)
		msix_past_table(&blk);
}
