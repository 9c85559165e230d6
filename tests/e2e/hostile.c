/*
 * hostile: a hostile virtio-pci driver, run as root inside the inner guest by
 * tests/e2e/test_hostile_guest.sh. It takes devices away from Linux (hostile_dev.c) and plays
 * the attacks of issue 7 against the VMM:
 *
 *   hostile ATTACK [blk=BDF] [net=BDF]
 *     mrg     net: MRG_RXBUF, RX queue 0 at 1024 entries (device max 256), one 12-byte buffer
 *             then 1-byte buffers; prints MRG-READY, then posts them again after each of
 *             the test host's 1400-byte frames
 *     status  blk and net: clear DRIVER_OK / FEATURES_OK without a reset and set them again,
 *             with requests in flight
 *     isr     blk, MSI-X off: two threads pinned to two vCPUs read the ISR through the
 *             PCI_CFG window and through the BAR while requests complete (legacy interrupts)
 *     reset   blk: reset through the PCI_CFG window, then at once set up and enable a queue;
 *             "stuck" counts rounds where the device shows a live, enabled queue that does not
 *             serve a request
 *     msix    blk and net: completions on a masked vector (the pending bit must be set),
 *             thousands of vector writes, writes past the table; 10000 writes to port 0xf5
 *     sweep   blk (and net for the register widths): odd status orders, queue_select out
 *             of range, queue sizes 0/3/2048/65535, rings at and beyond the end of RAM,
 *             descriptors outside RAM, loops, odd indirect tables, notifies on missing queues,
 *             every access width on every offset of common/ISR/device/notify, MSI-X past table
 *
 * Then, per attacked device, "G: RESULT NAME status=0x.. needs_reset=N works=N ok|BROKEN":
 * works means a full reset and a clean bring-up serve a request (blk: sector 0 holds
 * SECTOR0_PATTERN; net: a frame is transmitted). Last line: "G: HOSTILE-DONE".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "hostile.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#define NOVEC VIRTIO_MSI_NO_VECTOR
#define ST_UP                                                                                      \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |      \
	 VIRTIO_CONFIG_S_DRIVER_OK)

static struct vdev blk, net;
static struct dma bufs[32]; /* 64 KiB read buffers */

static void set_status(struct vdev *d, uint8_t v)
{
	wr8(d->common, CC(device_status), v);
}

static void post_reads(struct vq *q, int n)
{
	for (int i = 0; i < n; i++)
		blk_post_read(q, 8 + 128 * (uint64_t)i, bufs[i % 32], 65536);
}

/* ---- 1: mergeable RX buffers on an oversized queue ---- */

static void atk_mrg(void)
{
	static struct vq rx;
	struct dma b = dma_alloc(12 + 1023, 64);
	uint16_t max, size;
	bool enabled;
	int got = 0, rounds = 0;
	double end;

	if (!vdev_negotiate(&net, 1ULL << VIRTIO_NET_F_MRG_RXBUF))
		say("MRG FEATURES_OK refused");
	say("MRG features=0x%llx", (unsigned long long)net.features);
	wr16(net.common, CC(queue_select), 0);
	max = rd16(net.common, CC(queue_size));
	vq_alloc(&rx, 0, 1024);
	enabled = vq_enable(&net, &rx, NOVEC);
	size = rd16(net.common, CC(queue_size));
	say("MRG max=%u enable=%d size-read=%u", max, enabled, size);
	set_status(&net, ST_UP);
	say("MRG-READY status=0x%x", vdev_status(&net));
	/* The test host now sends large frames; each one eats all of these buffers. Post them
	 * again after every frame so that each frame overflows again. */
	for (end = now() + 30; now() < end && rounds < 16; rounds++) {
		for (int i = 0; i < 1024; i++) {
			uint64_t gpa = i ? b.gpa + 12 + (uint64_t)i - 1 : b.gpa;
			uint32_t len = i ? 1 : 12;
			uint16_t fl = VRING_DESC_F_WRITE;
			vq_add(&rx, &gpa, &len, &fl, 1);
		}
		vq_kick(&net, 0);
		int n = vq_wait(&rx, 1, end - now());
		if (!n)
			break;
		got += n + vq_wait(&rx, 1024, 0.2);
		end = now() + 5; /* the next frame comes within the ping interval */
	}
	say("MRG-USED %d rounds=%d status=0x%x", got, rounds, vdev_status(&net));
}

/* ---- 2: status games with requests in flight ---- */

static void flip_status(struct vdev *d, int round)
{
	uint8_t st = vdev_status(d);

	set_status(d, st & ~VIRTIO_CONFIG_S_DRIVER_OK);
	set_status(d, st | VIRTIO_CONFIG_S_DRIVER_OK); /* a second activate, no reset between */
	if (round & 1) {
		set_status(d, st & ~VIRTIO_CONFIG_S_FEATURES_OK);
		wr32(d->common, CC(guest_feature_select), 0);
		wr32(d->common, CC(guest_feature), (uint32_t)d->features ^ (1u << (round % 24)));
		set_status(d, st);
	}
}

static void atk_status(void)
{
	static struct vq q, rx, tx;
	int r;

	if (blk.common.p) {
		for (r = 0; r < 48; r++) {
			if (r % 8 == 0 && !blk_up(&blk, &q, 0, NOVEC))
				say("STATUS-BLK bring-up refused in round %d", r);
			post_reads(&q, 16);
			vq_kick(&blk, 0);
			flip_status(&blk, r);
			usleep(2000);
		}
		say("STATUS-BLK rounds=%d status=0x%x", r, vdev_status(&blk));
	}
	if (net.common.p) {
		for (r = 0; r < 48; r++) {
			if (r % 8 == 0 && !net_up(&net, &rx, &tx, 0, NOVEC))
				say("STATUS-NET bring-up refused in round %d", r);
			for (int i = 0; i < 8; i++)
				net_post_tx(&tx);
			vq_kick(&net, 1);
			flip_status(&net, r);
			usleep(2000);
		}
		say("STATUS-NET rounds=%d status=0x%x", r, vdev_status(&net));
	}
}

/* ---- 3: ISR through the window and the BAR on two vCPUs, INTx raised meanwhile ---- */

static volatile int isr_stop;
static unsigned long isr_count[2];

static void *isr_reader(void *arg)
{
	long cpu = (long)arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		say("ISR cannot pin to cpu %ld: %s", cpu, strerror(errno));
	while (!isr_stop) {
		if (cpu == 0)
			win_read(&blk, &blk.isr, 0, 1);
		else
			(void)rd8(blk.isr, 0);
		isr_count[cpu]++;
	}
	return NULL;
}

static void atk_isr(void)
{
	static struct vq q;
	pthread_t t[2];
	double end;
	int done = 0, posted = 0;

	msix_enable(&blk, false);
	if (!blk_up(&blk, &q, 0, NOVEC))
		say("ISR bring-up failed status=0x%x", vdev_status(&blk));
	for (long c = 0; c < 2; c++)
		if (pthread_create(&t[c], NULL, isr_reader, (void *)c))
			die("pthread_create");
	for (end = now() + 20; now() < end; posted++) {
		post_reads(&q, 1);
		vq_kick(&blk, 0);
		done += vq_wait(&q, 1, 2);
	}
	isr_stop = 1;
	for (int c = 0; c < 2; c++)
		pthread_join(t[c], NULL);
	say("ISR window-reads=%lu bar-reads=%lu requests=%d/%d status=0x%x", isr_count[0],
	    isr_count[1], done, posted, vdev_status(&blk));
}

/* ---- 4: reset through the PCI_CFG window, then a queue again at once ---- */

static void atk_reset(void)
{
	static struct vq q;
	int r, stuck = 0;

	for (r = 0; r < 48; r++) {
		if (!blk_up(&blk, &q, 0, NOVEC))
			say("RESET bring-up failed in round %d status=0x%x", r, vdev_status(&blk));
		post_reads(&q, 16);
		vq_kick(&blk, 0);
		win_write(&blk, &blk.common, CC(device_status), 1, 0);
		/* No wait for status 0: rewrite and re-enable the queue the device may still use.
		 */
		if (r & 1)
			vq_alloc(&q, 0, q.size); /* same memory, fresh rings */
		vq_program(&blk, &q, NOVEC);
		wr16(blk.common, CC(queue_enable), 1);
		if (!(r & 1))
			continue;
		set_status(&blk, ST_UP);
		/* Whatever the device made of it, what it shows must hold: an enabled queue on a
		 * live device serves a request. */
		post_reads(&q, 1);
		vq_kick(&blk, 0);
		if (!vq_wait(&q, 1, 0.5) && vdev_status(&blk) == ST_UP &&
		    rd16(blk.common, CC(queue_enable)) == 1)
			stuck++;
	}
	say("RESET rounds=%d stuck=%d status=0x%x", r, stuck, vdev_status(&blk));
}

/* ---- 5: MSI-X ---- */

static void msix_entry(struct vdev *d, unsigned int e, uint32_t data, uint32_t ctrl)
{
	volatile uint8_t *p = d->msix_table + 16 * e;

	mmio_write(p, 4, 0xfee00000); /* LAPIC, destination 0 */
	mmio_write(p + 4, 4, 0);
	mmio_write(p + 8, 4, data);
	mmio_write(p + 12, 4, ctrl);
}

static void msix_past_table(struct vdev *d)
{
	unsigned int e, n = 0;

	for (e = d->msix_n; e < d->msix_n + 64 && 16 * (e + 1) <= d->msix_room; e++, n++) {
		mmio_write(d->msix_table + 16 * e, 8, 0xfee00000deadbeefULL);
		mmio_write(d->msix_table + 16 * e + 8, 4, 0x41);
		mmio_write(d->msix_table + 16 * e + 12, 2, 0);
		(void)mmio_read(d->msix_table + 16 * e, 8);
	}
	mmio_write(d->msix_pba, 8, ~0ULL); /* the PBA is read-only */
	say("MSIX %s: %u entries written past the %u-entry table", d->bdf, n, d->msix_n);
}

static int pba0(struct vdev *d)
{
	return (int)(mmio_read(d->msix_pba, 4) & 1);
}

static void atk_msix(void)
{
	static struct vq q, rx, tx;
	int got;

	if (blk.msix) {
		msix_enable(&blk, true);
		msix_entry(&blk, 0, 0x4f, 1); /* masked */
		if (!blk_up(&blk, &q, 0, 0))
			say("MSIX-BLK bring-up failed status=0x%x", vdev_status(&blk));
		post_reads(&q, 32);
		vq_kick(&blk, 0);
		got = vq_wait(&q, 32, 10);
		say("MSIX-BLK-MASKED completions=%d pba=%d", got, pba0(&blk));
		/* Thousands of vector writes: table entries and queue_msix_vector on a live device.
		 */
		for (unsigned int i = 0; i < 5000; i++) {
			unsigned int e = blk.msix_n > 1 ? 1 + i % (blk.msix_n - 1) : 0;
			mmio_write(blk.msix_table + 16 * e + 8, 4, 0x40 + (i & 15));
			mmio_write(blk.msix_table + 16 * e + 12, 4, (e == 0) | (i & 1));
			wr16(blk.common, CC(queue_msix_vector), (uint16_t)(i % (blk.msix_n + 2)));
		}
		wr16(blk.common, CC(queue_msix_vector), 0);
		say("MSIX-BLK vector-writes=5000 status=0x%x", vdev_status(&blk));
		msix_past_table(&blk);
	}
	if (net.msix) {
		msix_enable(&net, true);
		msix_entry(&net, 0, 0x4f, 1);
		if (!net_up(&net, &rx, &tx, 0, 0))
			say("MSIX-NET bring-up failed status=0x%x", vdev_status(&net));
		for (int i = 0; i < 16; i++)
			net_post_tx(&tx);
		vq_kick(&net, 1);
		got = vq_wait(&tx, 16, 10);
		say("MSIX-NET-MASKED completions=%d pba=%d", got, pba0(&net));
		msix_past_table(&net);
	}
	if (ioperm(0xf5, 1, 1))
		die("ioperm 0xf5");
	for (int i = 0; i < 10000; i++)
		outb((unsigned char)i, 0xf5);
	say("PORT-F5 writes=10000");
}

/* ---- 6: the sweep ---- */

/* Bring-up up to FEATURES_OK, then queue 0 with the given ring addresses and size. */
static void raw_queue(struct vq *q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	vdev_negotiate(&blk, 1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	wr16(blk.common, CC(queue_select), 0);
	wr16(blk.common, CC(queue_size), size);
	wr32(blk.common, CC(queue_desc_lo), (uint32_t)desc);
	wr32(blk.common, CC(queue_desc_hi), (uint32_t)(desc >> 32));
	wr32(blk.common, CC(queue_avail_lo), (uint32_t)avail);
	wr32(blk.common, CC(queue_avail_hi), (uint32_t)(avail >> 32));
	wr32(blk.common, CC(queue_used_lo), (uint32_t)used);
	wr32(blk.common, CC(queue_used_hi), (uint32_t)(used >> 32));
	wr16(blk.common, CC(queue_enable), 1);
	set_status(&blk, ST_UP);
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

static void sweep_registers(struct vdev *d)
{
	const struct region *rs[] = {&d->common, &d->isr, &d->devcfg, &d->notify};
	const uint64_t pats[] = {~0ULL, 0x0101010101010101ULL, 0x5a5a5a5a5a5a5a5aULL};
	unsigned long n = 0;

	for (unsigned int i = 0; i < 4; i++) {
		const struct region *r = rs[i];
		if (!r->p)
			continue;
		size_t room = d->bar_len[r->bar] -
			      r->off; /* straddling the end is fine, leaving the BAR is not */
		for (int pat = -1; pat < 3; pat++)
			for (uint32_t off = 0; off < r->len; off++)
				for (unsigned int w = 1; w <= 8; w *= 2, n++) {
					if (off + w > room)
						continue;
					if (pat < 0)
						(void)mmio_read(r->p + off, w);
					else
						mmio_write(r->p + off, w, pats[pat]);
				}
	}
	say("SWEEP %s widths: %lu accesses, status=0x%x", d->bdf, n, vdev_status(d));
}

static void atk_sweep(void)
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
	const uint16_t sizes[] = {0, 1, 3, 2048, 65535};
	const uint64_t end = ram_end();
	const uint64_t bad[] = {
	    end - 16, end - 4096, end, end + 4096, 1ULL << 40, 0xfffffffffffff000ULL, ~0ULL - 15};
	struct dma ind = dma_alloc(4096, 4096), buf = dma_alloc(4096, 4096);
	unsigned int i, k;

	say("SWEEP ram-end=0x%llx", (unsigned long long)end);
	for (i = 0; i < sizeof(orders) / sizeof(orders[0]); i++) {
		vdev_reset(&blk);
		for (k = 0; k < 4 && orders[i][k]; k++)
			set_status(&blk, orders[i][k]);
		say("SWEEP status-order %u: status=0x%x", i, vdev_status(&blk));
	}
	/* All feature bits, then FEATURES_OK. */
	vdev_reset(&blk);
	set_status(&blk, 3);
	for (k = 0; k < 4; k++) {
		wr32(blk.common, CC(guest_feature_select), k);
		wr32(blk.common, CC(guest_feature), ~0u);
	}
	set_status(&blk, 0x0b);
	say("SWEEP all-features: status=0x%x", vdev_status(&blk));

	vdev_negotiate(&blk, 0);
	for (uint32_t sel = blk.num_queues; sel <= 0x10000; sel = sel * 2 + 1) {
		wr16(blk.common, CC(queue_select), (uint16_t)sel);
		for (k = CC(queue_size); k < CC(queue_used_hi) + 4; k += 2)
			(void)rd16(blk.common, k);
		vq_alloc(&q, (uint16_t)sel, 256);
		vq_enable(&blk, &q, 0);
		if ((uint64_t)sel * blk.notify_mult + 2 <= blk.notify.len)
			wr16(blk.notify, sel * blk.notify_mult, (uint16_t)sel);
	}
	say("SWEEP queue-select out of range: status=0x%x", vdev_status(&blk));

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		vq_alloc(&q, 0, 256);
		raw_queue(&q, sizes[i], q.desc_gpa, q.avail_gpa, q.used_gpa);
		wr16(blk.common, CC(queue_select), 0);
		say("SWEEP queue-size %u: size-read=%u enable=%u status=0x%x", sizes[i],
		    rd16(blk.common, CC(queue_size)), rd16(blk.common, CC(queue_enable)),
		    vdev_status(&blk));
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		raw_queue(NULL, 256, bad[i], q.avail_gpa, q.used_gpa);
		raw_queue(NULL, 256, q.desc_gpa, bad[i], q.used_gpa);
		raw_queue(NULL, 256, q.desc_gpa, q.avail_gpa, bad[i]);
		say("SWEEP rings at 0x%llx: status=0x%x", (unsigned long long)bad[i],
		    vdev_status(&blk));
	}

	/* Descriptor chains; each round starts from a clean device. */
	for (i = 0; i < 12; i++) {
		uint64_t bad_addr = bad[i % 7];
		const char *what;
		if (!blk_up(&blk, &q, 1ULL << VIRTIO_RING_F_INDIRECT_DESC, NOVEC))
			say("SWEEP bring-up failed status=0x%x", vdev_status(&blk));
		/* A sane header in buf, the status byte at buf+16, data at buf+512. */
		memset(buf.va, 0, 32);
		desc_set(&q.desc[0], buf.gpa, 16, VRING_DESC_F_NEXT, 1);
		desc_set(&q.desc[1], buf.gpa + 512, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
		desc_set(&q.desc[2], buf.gpa + 16, 1, VRING_DESC_F_WRITE, 0);
		switch (i) {
		case 0:
			what = "header outside RAM";
			q.desc[0].addr = bad_addr;
			break;
		case 1:
			what = "data across the end of RAM";
			desc_set(&q.desc[1], end - 256, 4096, 3, 2);
			break;
		case 2:
			what = "data address wraps";
			desc_set(&q.desc[1], ~0ULL - 8, 64, 3, 2);
			break;
		case 3:
			what = "status outside RAM";
			q.desc[2].addr = bad[3];
			break;
		case 4:
			what = "loop 0-1-0";
			desc_set(&q.desc[1], buf.gpa + 512, 512, 3, 0);
			break;
		case 5:
			what = "self loop";
			q.desc[0].next = 0;
			break;
		case 6:
			what = "next out of range";
			q.desc[1].next = 4000;
			break;
		case 7: /* indirect table whose entry is itself indirect */
			what = "nested indirect";
			desc_set((void *)ind.va, ind.gpa, 64, VRING_DESC_F_INDIRECT, 0);
			desc_set(&q.desc[0], ind.gpa, 16, VRING_DESC_F_INDIRECT, 0);
			break;
		case 8:
			what = "zero-length indirect";
			desc_set(&q.desc[0], ind.gpa, 0, VRING_DESC_F_INDIRECT, 0);
			break;
		case 9:
			what = "huge indirect";
			desc_set(&q.desc[0], ind.gpa, 0xfffffff0, VRING_DESC_F_INDIRECT, 0);
			break;
		case 10:
			what = "indirect length 17, outside RAM";
			desc_set(&q.desc[0], end - 8, 17, VRING_DESC_F_INDIRECT, 0);
			break;
		default: /* a loop inside an indirect table, and INDIRECT|NEXT */
			what = "indirect loop";
			desc_set((void *)ind.va, buf.gpa, 16, VRING_DESC_F_NEXT, 1);
			desc_set((void *)(ind.va + 16), buf.gpa + 512, 16, VRING_DESC_F_NEXT, 0);
			desc_set(&q.desc[0], ind.gpa, 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT,
				 1);
			break;
		}
		publish0(&q, what);
	}

	blk_up(&blk, &q, 0, NOVEC);
	for (uint32_t qi = 1; qi <= 0x10000; qi = qi * 4) {
		wr16(blk.notify, 0, (uint16_t)qi); /* queue index that does not exist */
		if ((uint64_t)qi * blk.notify_mult + 2 <= blk.notify.len)
			wr16(blk.notify, qi * blk.notify_mult, (uint16_t)qi);
	}
	say("SWEEP notifies on missing queues: status=0x%x", vdev_status(&blk));
	sweep_registers(&blk);
	if (net.common.p)
		sweep_registers(&net);
	if (blk.msix)
		msix_past_table(&blk);
}

/* ---- main ---- */

static void verdict(const char *name, struct vdev *d, bool is_net)
{
	uint8_t st = vdev_status(d);
	bool needs_reset = st & STATUS_NEEDS_RESET;
	bool works = is_net ? net_tx_ok(d) : blk_sector0_ok(d);

	say("RESULT %s status=0x%x needs_reset=%d works=%d %s", name, st, needs_reset, works,
	    needs_reset || works ? "ok" : "BROKEN");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(void);
	} attacks[] = {{"mrg", atk_mrg},     {"status", atk_status}, {"isr", atk_isr},
		       {"reset", atk_reset}, {"msix", atk_msix},     {"sweep", atk_sweep}};
	void (*run)(void) = NULL;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (unsigned int i = 0; argc > 1 && i < sizeof(attacks) / sizeof(attacks[0]); i++)
		if (!strcmp(argv[1], attacks[i].name))
			run = attacks[i].run;
	if (!run) {
		fprintf(stderr,
			"usage: hostile mrg|status|isr|reset|msix|sweep [blk=BDF] [net=BDF]\n");
		return 2;
	}
	dma_init(16UL << 20);
	for (int i = 0; i < 32; i++)
		bufs[i] = dma_alloc(65536, 4096);
	for (int i = 2; i < argc; i++) {
		if (!strncmp(argv[i], "blk=", 4))
			vdev_open(&blk, argv[i] + 4);
		else if (!strncmp(argv[i], "net=", 4))
			vdev_open(&net, argv[i] + 4);
	}
	say("ATTACK %s", argv[1]);
	run();
	if (blk.common.p)
		verdict("blk", &blk, false);
	if (net.common.p)
		verdict("net", &net, true);
	say("HOSTILE-DONE");
	return 0;
}
