/*
 * hostile: a hostile virtio driver, run as root inside the inner guest by
 * tests/e2e/test_hostile_guest.sh. It takes devices away from Linux (hostile_open.c: a
 * virtio-pci function, or a virtio-mmio window no driver claimed) and plays the attacks of
 * issue 7 against the VMM, through one register layer whatever the transport (hostile_dev.c):
 *
 *   hostile ATTACK [blk=BDF|mmio[@ADDR]] [net=BDF|mmio[@ADDR]]
 *     mrg     net: MRG_RXBUF, RX queue 0 at 1024 entries (device max 256), one 12-byte buffer
 *             then 1-byte buffers; prints MRG-READY, then posts them again after each of
 *             the test host's 1400-byte frames
 *     status  blk and net: clear DRIVER_OK / FEATURES_OK without a reset and set them again,
 *             with requests in flight
 *     isr     blk: two threads pinned to two vCPUs race the device's interrupts while requests
 *             complete. PCI, MSI-X off: they read the ISR through the PCI_CFG window and the
 *             BAR (legacy interrupts). mmio: they read InterruptStatus and write InterruptACK
 *             (one what it read, the other all bits)
 *     reset   blk: reset (PCI: through the PCI_CFG window), then at once set up and enable a
 *             queue; "stuck" counts rounds where the device shows a live, enabled queue that
 *             does not serve a request
 *     msix    PCI, blk and net: completions on a masked vector (the pending bit must be set),
 *             thousands of vector writes, writes past the table; 10000 writes to port 0xf5
 *     sweep   blk (and net for the register widths): see hostile_sweep.c
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
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

struct vdev blk, net;
static struct dma bufs[32]; /* 64 KiB read buffers */

#define set_status vdev_set_status

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
	vreg_wr(&net, R_QSEL, 0);
	max = (uint16_t)vreg_rd(&net, R_QSIZE_MAX);
	vq_alloc(&rx, 0, 1024);
	enabled = vq_enable(&net, &rx, NOVEC);
	size = (uint16_t)vreg_rd(&net, R_QSIZE); /* mmio: write-only, reads 0 */
	say("MRG max=%u enable=%d size-read=%u", max, enabled, size);
	set_status(&net, ST_UP);
	say("MRG-READY status=0x%x", vdev_status(&net));
	/* A refused queue or a device in NEEDS_RESET takes no frame: waiting for one only costs
	 * the test 30 s. A queue the device took as it is still gets the whole attack. */
	if (!enabled || (vdev_status(&net) & STATUS_NEEDS_RESET))
		end = 0;
	else
		end = now() + 30;
	/* The test host now sends large frames; each one eats all of these buffers. Post them
	 * again after every frame so that each frame overflows again. */
	for (; now() < end && rounds < 16; rounds++) {
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
		vreg_wr(d, R_DRV_FEAT_SEL, 0);
		vreg_wr(d, R_DRV_FEAT, (uint32_t)d->features ^ (1u << (round % 24)));
		set_status(d, st);
	}
}

static void atk_status(void)
{
	static struct vq q, rx, tx;
	int r;

	if (blk.open) {
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
	if (net.open) {
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

/* ---- 3: the interrupt status on two vCPUs while the device raises interrupts ---- */

static volatile int isr_stop;
static unsigned long isr_count[2], isr_seen[2];

/* mmio: read InterruptStatus and acknowledge (cpu 0: what it read; cpu 1: every bit, or none,
 * or unknown ones), racing the device setting causes from the event loop. */
static void isr_mmio(long cpu, unsigned long i)
{
	uint32_t s = (uint32_t)mrd(&blk, VIRTIO_MMIO_INTERRUPT_STATUS, 4);

	isr_seen[cpu] += s != 0;
	if (cpu == 0)
		mwr(&blk, VIRTIO_MMIO_INTERRUPT_ACK, 4, s);
	else
		mwr(&blk, VIRTIO_MMIO_INTERRUPT_ACK, 4, i % 3 == 0 ? ~0u : i % 3 == 1 ? 0 : ~3u);
}

static void *isr_reader(void *arg)
{
	long cpu = (long)arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		say("ISR cannot pin to cpu %ld: %s", cpu, strerror(errno));
	while (!isr_stop) {
		if (blk.is_mmio)
			isr_mmio(cpu, isr_count[cpu]);
		else if (cpu == 0)
			isr_seen[cpu] += win_read(&blk, &blk.isr, 0, 1) != 0;
		else
			isr_seen[cpu] += rd8(blk.isr, 0) != 0;
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
	/* mmio: 10 s make thousands of requests too, and keep its run inside its time budget. */
	for (end = now() + (blk.is_mmio ? 10 : 20); now() < end; posted++) {
		post_reads(&q, 1);
		vq_kick(&blk, 0);
		done += vq_wait(&q, 1, 2);
	}
	isr_stop = 1;
	for (int c = 0; c < 2; c++)
		pthread_join(t[c], NULL);
	say("ISR %s=%lu %s=%lu seen=%lu requests=%d/%d status=0x%x",
	    blk.is_mmio ? "status-ack-cpu0" : "window-reads", isr_count[0],
	    blk.is_mmio ? "status-ack-cpu1" : "bar-reads", isr_count[1], isr_seen[0] + isr_seen[1],
	    done, posted, vdev_status(&blk));
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
		if (blk.is_mmio)
			set_status(&blk, 0);
		else
			win_write(&blk, &blk.common, CC(device_status), 1, 0);
		/* No wait for status 0: rewrite and re-enable the queue the device may still use.
		 */
		if (r & 1)
			vq_alloc(&q, 0, q.size); /* same memory, fresh rings */
		vq_program(&blk, &q, NOVEC);
		vreg_wr(&blk, R_QENABLE, 1);
		if (!(r & 1))
			continue;
		set_status(&blk, ST_UP);
		/* Whatever the device made of it, what it shows must hold: an enabled queue on a
		 * live device serves a request. */
		post_reads(&q, 1);
		vq_kick(&blk, 0);
		if (!vq_wait(&q, 1, 0.5) && vdev_status(&blk) == ST_UP &&
		    vreg_rd(&blk, R_QENABLE) == 1)
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

void msix_past_table(struct vdev *d)
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

/*
 * The device publishes used->idx before it signals, so the pending bit may trail the
 * completions the guest already sees: wait up to 2 s for it.
 */
static int pba0(struct vdev *d)
{
	double end = now() + 2;
	int set;

	while (!(set = (int)(mmio_read(d->msix_pba, 4) & 1)) && now() < end)
		usleep(1000);
	return set;
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
			"usage: hostile mrg|status|isr|reset|msix|sweep [blk=BDF|mmio[@ADDR]] "
			"[net=BDF|mmio[@ADDR]]\n");
		return 2;
	}
	dma_init(16UL << 20);
	for (int i = 0; i < 32; i++)
		bufs[i] = dma_alloc(65536, 4096);
	for (int i = 2; i < argc; i++) {
		if (!strncmp(argv[i], "blk=", 4))
			vdev_open(&blk, argv[i] + 4, VIRTIO_ID_BLOCK);
		else if (!strncmp(argv[i], "net=", 4))
			vdev_open(&net, argv[i] + 4, VIRTIO_ID_NET);
	}
	say("ATTACK %s", argv[1]);
	run();
	if (blk.open)
		verdict("blk", &blk, false);
	if (net.open)
		verdict("net", &net, true);
	say("HOSTILE-DONE");
	return 0;
}
