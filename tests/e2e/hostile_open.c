/*
 * hostile_open.c: take a device away from Linux for tests/e2e/hostile. A virtio-pci function is
 * unbound from virtio-pci and reached through sysfs (config space, BAR mmap). A virtio-mmio
 * window is mapped from /dev/mem: the guest kernel has CONFIG_(IO_)STRICT_DEVMEM, so this works
 * only while no driver claimed it; the test never loads virtio_mmio, and this file refuses a
 * window whose LNRO0005 platform device has a driver bound.
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
#include <unistd.h>

/* ---- virtio-pci ---- */

uint32_t cfg_read(struct vdev *d, unsigned int off, unsigned int size)
{
	uint32_t v = 0;

	if (pread(d->cfg_fd, &v, size, off) != (ssize_t)size)
		die("config read");
	return v;
}

void cfg_write(struct vdev *d, unsigned int off, unsigned int size, uint32_t v)
{
	if (pwrite(d->cfg_fd, &v, size, off) != (ssize_t)size)
		die("config write");
}

/* VIRTIO_PCI_CAP_PCI_CFG: point the window at (bar, offset, length), then move the data. */
static void win_point(struct vdev *d, const struct region *r, uint32_t off, unsigned int size)
{
	const unsigned int c = d->win;

	cfg_write(d, c + offsetof(struct virtio_pci_cap, bar), 1, r->bar);
	cfg_write(d, c + offsetof(struct virtio_pci_cap, offset), 4, r->off + off);
	cfg_write(d, c + offsetof(struct virtio_pci_cap, length), 4, size);
}

uint32_t win_read(struct vdev *d, const struct region *r, uint32_t off, unsigned int size)
{
	win_point(d, r, off, size);
	return cfg_read(d, d->win + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data), size);
}

void win_write(struct vdev *d, const struct region *r, uint32_t off, unsigned int size, uint32_t v)
{
	win_point(d, r, off, size);
	cfg_write(d, d->win + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data), size, v);
}

void msix_enable(struct vdev *d, bool on)
{
	uint16_t ctl;

	if (!d->msix)
		return;
	ctl = (uint16_t)cfg_read(d, d->msix + 2, 2);
	ctl = on ? (ctl | 0x8000) & ~0x4000 : ctl & ~0x8000; /* enable, function mask off */
	cfg_write(d, d->msix + 2, 2, ctl);
}

static volatile uint8_t *map_bar(struct vdev *d, unsigned int bar)
{
	char path[96];
	struct stat st;
	void *p;
	int fd;

	if (bar > 5)
		return NULL;
	if (d->bar[bar])
		return d->bar[bar];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource%u", d->bdf, bar);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0 || fstat(fd, &st))
		die(path);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die(path);
	close(fd);
	d->bar_len[bar] = (size_t)st.st_size;
	return d->bar[bar] = p;
}

static void map_region(struct vdev *d, struct region *r, unsigned int cap)
{
	r->bar = (uint8_t)cfg_read(d, cap + offsetof(struct virtio_pci_cap, bar), 1);
	r->off = cfg_read(d, cap + offsetof(struct virtio_pci_cap, offset), 4);
	r->len = cfg_read(d, cap + offsetof(struct virtio_pci_cap, length), 4);
	r->p = map_bar(d, r->bar);
	if (!r->p || (size_t)r->off + r->len > d->bar_len[r->bar]) {
		errno = ERANGE;
		die("capability outside its BAR");
	}
	r->p += r->off;
}

/* Unbind Linux's driver, turn on memory decoding and bus mastering, find the regions. */
static void open_pci(struct vdev *d, const char *bdf)
{
	char path[96];
	unsigned int cap, n = 0;
	int fd;

	snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
	fd = open("/sys/bus/pci/drivers/virtio-pci/unbind", O_WRONLY);
	if (fd >= 0) { /* fails harmlessly when the function is not bound */
		if (write(fd, bdf, strlen(bdf)) < 0 && errno != ENODEV)
			say("unbind %s: %s", bdf, strerror(errno));
		close(fd);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	d->cfg_fd = open(path, O_RDWR);
	if (d->cfg_fd < 0)
		die(path);
	cfg_write(d, 4, 2, cfg_read(d, 4, 2) | 0x6); /* PCI_COMMAND: MEMORY | MASTER */
	for (cap = cfg_read(d, 0x34, 1) & ~3u; cap && n++ < 48;
	     cap = cfg_read(d, cap + 1, 1) & ~3u) {
		uint8_t id = (uint8_t)cfg_read(d, cap, 1), type;
		if (id == 0x11) { /* MSI-X: table and PBA as (BIR, offset) */
			uint32_t t = cfg_read(d, cap + 4, 4), p = cfg_read(d, cap + 8, 4);
			volatile uint8_t *tb = map_bar(d, t & 7), *pb = map_bar(d, p & 7);
			d->msix = cap;
			d->msix_n = (cfg_read(d, cap + 2, 2) & 0x7ff) + 1;
			d->msix_table = tb + (t & ~7u);
			d->msix_pba = pb + (p & ~7u);
			d->msix_room = d->bar_len[t & 7] - (t & ~7u);
			continue;
		}
		if (id != 0x09)
			continue;
		type = (uint8_t)cfg_read(d, cap + offsetof(struct virtio_pci_cap, cfg_type), 1);
		if (type == VIRTIO_PCI_CAP_COMMON_CFG && !d->common.p)
			map_region(d, &d->common, cap);
		else if (type == VIRTIO_PCI_CAP_ISR_CFG && !d->isr.p)
			map_region(d, &d->isr, cap);
		else if (type == VIRTIO_PCI_CAP_DEVICE_CFG && !d->devcfg.p)
			map_region(d, &d->devcfg, cap);
		else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG && !d->notify.p) {
			map_region(d, &d->notify, cap);
			d->notify_mult = cfg_read(d, cap + 16, 4);
		} else if (type == VIRTIO_PCI_CAP_PCI_CFG && !d->win)
			d->win = cap;
	}
	if (!d->common.p || !d->isr.p || !d->notify.p || !d->win) {
		errno = ENOENT;
		die("virtio capabilities");
	}
	d->num_queues = rd16(d->common, CC(num_queues));
	say("OPEN %s queues=%u msix=%u win=0x%x notify_mult=%u", bdf, d->num_queues, d->msix_n,
	    d->win, d->notify_mult);
}

/* ---- virtio-mmio ---- */

#define MMIO_MAGIC 0x74726976	       /* "virt" */
#define MMIO_LAYOUT_BASE 0xe0200000ULL /* kestrel's documented layout, 4 KiB per device */
#define MMIO_MAX 8

/* Window addresses: the LNRO0005 resources in /proc/iomem (with their platform device names),
 * else kestrel's documented layout. */
static int mmio_windows(uint64_t *addr, char (*name)[32])
{
	FILE *f = fopen("/proc/iomem", "r");
	char line[256];
	int n = 0;

	while (f && n < MMIO_MAX && fgets(line, sizeof(line), f)) {
		uint64_t a, b;
		char *p = strstr(line, "LNRO0005");
		if (p && sscanf(line, " %" SCNx64 "-%" SCNx64, &a, &b) == 2) {
			addr[n] = a;
			snprintf(name[n], sizeof(name[n]), "%.*s", (int)strcspn(p, " \n"), p);
			n++;
		}
	}
	if (f)
		fclose(f);
	if (n)
		return n;
	say("MMIO no LNRO0005 in /proc/iomem: trying the documented layout");
	for (n = 0; n < MMIO_MAX; n++) {
		addr[n] = MMIO_LAYOUT_BASE + 4096ULL * (uint64_t)n;
		name[n][0] = '\0';
	}
	return n;
}

static volatile uint8_t *map_window(uint64_t gpa)
{
	static int fd = -1;
	void *p;

	if (fd < 0 && (fd = open("/dev/mem", O_RDWR | O_SYNC)) < 0)
		die("/dev/mem");
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)gpa);
	return p == MAP_FAILED ? NULL : p;
}

static void open_mmio(struct vdev *d, const char *spec, uint32_t device_id)
{
	static uint64_t taken[MMIO_MAX];
	static int ntaken;
	uint64_t addr[MMIO_MAX], want = 0;
	char name[MMIO_MAX][32], path[384];
	int n = mmio_windows(addr, name);

	if (spec[4] == '@')
		want = strtoull(spec + 5, NULL, 0);
	for (int i = 0; i < n; i++) {
		volatile uint8_t *w;
		bool used = false;
		for (int k = 0; k < ntaken; k++)
			used |= taken[k] == addr[i];
		if (used || (want && addr[i] != want))
			continue;
		snprintf(path, sizeof(path), "/sys/bus/platform/devices/%s/driver", name[i]);
		if (name[i][0] && access(path, F_OK) == 0) {
			say("MMIO %s at 0x%llx has a driver: skipped", name[i],
			    (unsigned long long)addr[i]);
			continue;
		}
		w = map_window(addr[i]);
		if (!w) {
			say("MMIO cannot map 0x%llx: %s", (unsigned long long)addr[i],
			    strerror(errno));
			continue;
		}
		if (mmio_read(w + VIRTIO_MMIO_MAGIC_VALUE, 4) != MMIO_MAGIC ||
		    mmio_read(w + VIRTIO_MMIO_VERSION, 4) != 2 ||
		    mmio_read(w + VIRTIO_MMIO_DEVICE_ID, 4) != device_id) {
			munmap((void *)w, 4096);
			continue;
		}
		taken[ntaken++] = addr[i];
		d->is_mmio = true;
		d->regs = w;
		d->regs_gpa = addr[i];
		snprintf(d->bdf, sizeof(d->bdf), "mmio@0x%llx", (unsigned long long)addr[i]);
		/* MMIO has no queue count: the first QueueSel whose QueueNumMax is 0 ends them. */
		for (d->num_queues = 0; d->num_queues < 64; d->num_queues++) {
			mmio_write(w + VIRTIO_MMIO_QUEUE_SEL, 4, d->num_queues);
			if (!mmio_read(w + VIRTIO_MMIO_QUEUE_NUM_MAX, 4))
				break;
		}
		say("OPEN %s %s device=%u queues=%u", d->bdf, name[i], device_id, d->num_queues);
		return;
	}
	errno = ENODEV;
	die("no unclaimed virtio-mmio window with that device id");
}

int vdev_open(struct vdev *d, const char *spec, uint32_t device_id)
{
	memset(d, 0, sizeof(*d));
	if (!strncmp(spec, "mmio", 4))
		open_mmio(d, spec, device_id);
	else
		open_pci(d, spec);
	d->open = true;
	return 0;
}
