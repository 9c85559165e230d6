/*
 * virtio-blk against a hand-written driver: requests are built as descriptor chains in a fake
 * 16 MiB guest RAM, kicked through the device's ops table, and checked in the used ring, the
 * status byte and the image file. The request tests run once per engine (sync, io_uring).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "virtio/blk.h"
#include "virtio/blk_backend.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"

#define MiB (1ULL << 20)
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

static struct guest_mem gm;
static struct event_loop loop;
static struct virtio_dev *dev;
static char img_path[64] = "";
static int img_fd = -1; /* the test's own view of the image */
static uint16_t drv_avail_idx, next_desc, used_seen;
static unsigned int slot;
static unsigned int signals[VIRTIO_MAX_QUEUES], needs_resets, config_signals;
static const char *engine = "sync";

/* ---- fake transport ---- */

static void fake_signal_queue(struct virtio_dev *d, uint16_t q)
{
	(void)d;
	__atomic_fetch_add(&signals[q], 1, __ATOMIC_SEQ_CST);
}

static void fake_signal_config(struct virtio_dev *d)
{
	(void)d;
	config_signals++;
}

static void fake_needs_reset(struct virtio_dev *d)
{
	(void)d;
	needs_resets++;
}

static const struct virtio_transport_ops fake_transport = {
    .signal_queue = fake_signal_queue,
    .signal_config = fake_signal_config,
    .needs_reset = fake_needs_reset,
};

/* ---- fake guest memory and rings ---- */

static uint8_t *host(uint64_t gpa)
{
	return gm.regions[0].host + gpa;
}

static struct vring_avail *avail(void)
{
	return (struct vring_avail *)host(AVAIL_GPA);
}

static struct vring_used *used(void)
{
	return (struct vring_used *)host(USED_GPA);
}

static uint16_t used_idx(void)
{
	return __atomic_load_n(&used()->idx, __ATOMIC_ACQUIRE);
}

static void set_desc_in(uint64_t table, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
			uint16_t next)
{
	struct vring_desc *d = (struct vring_desc *)host(table) + i;

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

static void make_avail(uint16_t head)
{
	avail()->ring[drv_avail_idx % QSIZE] = head;
	drv_avail_idx++;
	__atomic_store_n(&avail()->idx, drv_avail_idx, __ATOMIC_RELEASE);
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool w;
};

/* Puts a chain of n buffers in the descriptor table and makes it available; returns the head. */
static uint16_t add_chain(const struct seg *s, unsigned int n)
{
	uint16_t head;

	if (next_desc + n > QSIZE)
		next_desc = 0;
	head = next_desc;
	for (unsigned int i = 0; i < n; i++) {
		uint16_t flags =
		    (s[i].w ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0);
		set_desc_in(DESC_GPA, next_desc, s[i].gpa, s[i].len, flags, next_desc + 1);
		next_desc++;
	}
	make_avail(head);
	return head;
}

struct req {
	uint16_t head;
	uint64_t status_gpa;
};

static uint64_t put_hdr(uint32_t type, uint64_t sector)
{
	uint64_t gpa = HDR_GPA + slot * 64;
	struct virtio_blk_outhdr h = {.type = type, .ioprio = 0, .sector = sector};

	memcpy(host(gpa), &h, sizeof(h));
	return gpa;
}

/* header | data (readable for writes, writable for reads) | status */
static struct req req_data(uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t len,
			   bool data_writable)
{
	struct req r;
	struct seg s[3];
	unsigned int n = 0;

	r.status_gpa = STATUS_GPA + slot;
	*host(r.status_gpa) = 0xee;
	s[n++] = (struct seg){put_hdr(type, sector), sizeof(struct virtio_blk_outhdr), false};
	if (len)
		s[n++] = (struct seg){data_gpa, len, data_writable};
	s[n++] = (struct seg){r.status_gpa, 1, true};
	slot++;
	r.head = add_chain(s, n);
	return r;
}

static struct req req_range(uint32_t type, uint64_t sector, uint32_t num, uint32_t flags)
{
	uint64_t gpa = DATA2_GPA + slot * 16;
	struct virtio_blk_discard_write_zeroes range = {
	    .sector = sector, .num_sectors = num, .flags = flags};

	memcpy(host(gpa), &range, sizeof(range));
	return req_data(type, 0, gpa, sizeof(range), false);
}

static void kick(void)
{
	dev->ops->queue_notify(dev, 0);
}

static void run(void)
{
	kick();
	virtio_blk_wait_idle(dev);
}

static uint8_t status_of(struct req r)
{
	return *host(r.status_gpa);
}

/* The next used element, which must be for r. */
static uint32_t expect_used(struct req r, uint8_t status)
{
	struct vring_used_elem *e;

	cr_assert_gt((uint16_t)(used_idx() - used_seen), 0, "request %u not completed", r.head);
	e = &used()->ring[used_seen % QSIZE];
	used_seen++;
	cr_assert_eq(e->id, r.head);
	cr_assert_eq(status_of(r), status, "status %u, want %u", status_of(r), status);
	return e->len;
}

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + 3 + (off >> 9));
}

static void file_read(uint64_t off, void *buf, size_t len)
{
	cr_assert_eq(pread(img_fd, buf, len, off), (ssize_t)len);
}

static bool file_is(uint64_t off, size_t len, bool zero)
{
	uint8_t *buf = malloc(len);
	bool ok = true;

	file_read(off, buf, len);
	for (size_t i = 0; i < len && ok; i++)
		ok = buf[i] == (zero ? 0 : pattern(off + i));
	free(buf);
	return ok;
}

/* ---- setup ---- */

static void make_image(uint64_t size)
{
	uint8_t *buf = malloc(size);

	strcpy(img_path, "/tmp/kestrel-blk-XXXXXX");
	img_fd = mkstemp(img_path);
	cr_assert_geq(img_fd, 0);
	for (uint64_t i = 0; i < size; i++)
		buf[i] = pattern(i);
	cr_assert_eq(pwrite(img_fd, buf, size, 0), (ssize_t)size);
	free(buf);
}

static int create(const struct blk_options *o, struct virtio_dev **out, struct kerr *err)
{
	return virtio_blk_create(out, o, &gm, &loop, "vda", err);
}

/* Negotiates everything offered and enables queue 0 (and others for MQ). */
static void bring_up(void)
{
	uint64_t f = dev->host_features | (1ULL << VIRTIO_F_VERSION_1);

	dev->transport = &fake_transport;
	dev->guest_features = f;
	memset(host(DESC_GPA), 0, HDR_GPA - DESC_GPA);
	drv_avail_idx = next_desc = used_seen = 0;
	virtq_reset(&dev->vqs[0]);
	cr_assert_eq(virtq_setup(&dev->vqs[0], &gm, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, f, NULL),
		     0);
	cr_assert_eq(dev->ops->activate(dev), 0);
}

static void start_dev(const char *eng, bool readonly)
{
	struct blk_options o = {.path = img_path, .readonly = readonly};
	struct kerr err = {.msg = ""};

	engine = eng;
	cr_assert_eq(setenv("KESTREL_BLK_ENGINE", eng, 1), 0);
	if (create(&o, &dev, &err) < 0) {
		if (!strcmp(eng, "io_uring") && strstr(err.msg, "io_uring"))
			cr_skip_test("io_uring unavailable here: %s", err.msg);
		cr_assert_fail("create: %s", err.msg);
	}
	cr_assert_eq(strcmp(virtio_blk_engine(dev), eng), 0, "engine %s, want %s",
		     virtio_blk_engine(dev), eng);
	bring_up();
}

static void suite_init(void)
{
	struct guest_mem_region layout = {.gpa = 0, .size = RAM_SIZE};

	cr_assert_eq(guest_mem_map(&gm, &layout, 1, NULL), 0);
	cr_assert_eq(event_loop_init(&loop, NULL), 0);
	make_image(IMG_SIZE);
}

static void suite_fini(void)
{
	event_loop_stop(&loop);
	virtio_blk_destroy(dev);
	dev = NULL;
	event_loop_destroy(&loop);
	if (img_fd >= 0)
		close(img_fd);
	if (img_path[0])
		unlink(img_path);
	guest_mem_unmap(&gm);
}

TestSuite(blk_sync, .init = suite_init, .fini = suite_fini);
TestSuite(blk_uring, .init = suite_init, .fini = suite_fini);
TestSuite(blk, .init = suite_init, .fini = suite_fini);

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

/* ---- requests ---- */

BOTH(out_then_in_round_trip)
{
	uint8_t *src = host(DATA_GPA), *dst = host(DATA2_GPA);
	uint8_t file[4096];
	struct req w, r;

	for (int i = 0; i < 4096; i++)
		src[i] = (uint8_t)(i ^ 0x5a);
	w = req_data(VIRTIO_BLK_T_OUT, 8, DATA_GPA, 4096, false);
	run();
	cr_assert_eq(expect_used(w, VIRTIO_BLK_S_OK), 1);
	file_read(8 * 512, file, sizeof(file));
	cr_assert_arr_eq(file, src, sizeof(file));
	cr_assert(file_is(0, 8 * 512, false), "bytes before the write changed");
	cr_assert(file_is(16 * 512, 512, false), "bytes after the write changed");
	/* EVENT_IDX with used_event 0: the first used buffer interrupts, later ones only once
	 * the driver moves used_event. */
	cr_assert_eq(signals[0], 1);
	avail()->ring[QSIZE] = 1; /* used_event: interrupt when used->idx passes 1 */

	memset(dst, 0, 8192);
	r = req_data(VIRTIO_BLK_T_IN, 8, DATA2_GPA, 4096, true);
	run();
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_OK), 4096 + 1);
	cr_assert_arr_eq(dst, src, 4096);
	cr_assert_eq(dst[4096], 0, "read past the buffer");
	cr_assert_eq(signals[0], 2);
}

BOTH(read_matches_file_across_segments)
{
	/* header+data in one readable buffer is not a read; here: header, 3 data buffers of odd
	 * sizes summing to 1536, status - the sector boundaries fall mid-buffer. */
	struct seg s[5] = {
	    {put_hdr(VIRTIO_BLK_T_IN, 100), 16, false},
	    {DATA_GPA, 700, true},
	    {DATA_GPA + 0x1000, 300, true},
	    {DATA_GPA + 0x2000, 536, true},
	    {STATUS_GPA, 1, true},
	};
	uint8_t file[1536];
	struct req r = {.status_gpa = STATUS_GPA};

	r.head = add_chain(s, 5);
	run();
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_OK), 1536 + 1);
	file_read(100 * 512, file, sizeof(file));
	cr_assert_arr_eq(host(DATA_GPA), file, 700);
	cr_assert_arr_eq(host(DATA_GPA + 0x1000), file + 700, 300);
	cr_assert_arr_eq(host(DATA_GPA + 0x2000), file + 1000, 536);
}

BOTH(status_shares_the_data_buffer)
{
	/* Any layout: header and data in one readable buffer; data and status in one writable. */
	uint8_t *buf = host(DATA_GPA);
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_OUT, .sector = 3};
	struct seg w[2] = {{DATA_GPA, 16 + 512, false}, {STATUS_GPA, 1, true}};
	struct seg r[2] = {{HDR_GPA, 16, false}, {DATA2_GPA, 513, true}};
	struct req rw = {.status_gpa = STATUS_GPA}, rr = {.status_gpa = DATA2_GPA + 512};

	memcpy(buf, &h, sizeof(h));
	memset(buf + 16, 0xab, 512);
	rw.head = add_chain(w, 2);
	run();
	cr_assert_eq(expect_used(rw, VIRTIO_BLK_S_OK), 1);
	cr_assert(file_is(2 * 512, 512, false));
	cr_assert(file_is(4 * 512, 512, false));
	file_read(3 * 512, host(DATA2_GPA + 0x10000), 512);
	cr_assert_arr_eq(host(DATA2_GPA + 0x10000), (uint8_t[512]){[0 ... 511] = 0xab}, 512);

	put_hdr(VIRTIO_BLK_T_IN, 3); /* slot 0 = HDR_GPA */
	rr.head = add_chain(r, 2);
	run();
	cr_assert_eq(expect_used(rr, VIRTIO_BLK_S_OK), 513);
	cr_assert_arr_eq(host(DATA2_GPA), (uint8_t[512]){[0 ... 511] = 0xab}, 512);
}

BOTH(many_requests_in_one_kick)
{
	struct req r[32];
	uint8_t file[512];

	for (int i = 0; i < 32; i++)
		r[i] = req_data(VIRTIO_BLK_T_IN, i * 3, DATA_GPA + i * 4096, 1024, true);
	run();
	for (int i = 0; i < 32; i++) {
		/* Completion order is the engine's; find each one. */
		cr_assert_eq(status_of(r[i]), VIRTIO_BLK_S_OK);
		file_read(i * 3 * 512, file, sizeof(file));
		cr_assert_arr_eq(host(DATA_GPA + i * 4096), file, 512, "request %d", i);
	}
	cr_assert_eq(used_idx(), 32);
	cr_assert_eq(dev->vqs[0].inflight, 0);
}

BOTH(flush)
{
	struct req w, f;

	memset(host(DATA_GPA), 0x11, 512);
	w = req_data(VIRTIO_BLK_T_OUT, 0, DATA_GPA, 512, false);
	f = req_data(VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	run();
	cr_assert_eq(status_of(w), VIRTIO_BLK_S_OK);
	cr_assert_eq(status_of(f), VIRTIO_BLK_S_OK);
	cr_assert_eq(used_idx(), 2);
	cr_assert_eq(virtio_blk_stats(dev)->flushes, 1);
}

BOTH(get_id)
{
	uint8_t want[20] = "kestrel-vda";
	struct req r;

	memset(host(DATA_GPA), 0xff, 64);
	r = req_data(VIRTIO_BLK_T_GET_ID, 0, DATA_GPA, 20, true);
	run();
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_OK), 21);
	cr_assert_arr_eq(host(DATA_GPA), want, 20);
	cr_assert_eq(*host(DATA_GPA + 20), 0xff);
}

BOTH(discard_and_write_zeroes)
{
	struct req d, z, u;

	d = req_range(VIRTIO_BLK_T_DISCARD, 8, 8, 0);
	z = req_range(VIRTIO_BLK_T_WRITE_ZEROES, 40, 3, 0);
	u = req_range(VIRTIO_BLK_T_WRITE_ZEROES, 80, 16, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	run();
	cr_assert_eq(status_of(d), VIRTIO_BLK_S_OK);
	cr_assert_eq(status_of(z), VIRTIO_BLK_S_OK);
	cr_assert_eq(status_of(u), VIRTIO_BLK_S_OK);
	/* Write zeroes must read back as zeros; a discard does on ext4/xfs/tmpfs too. */
	cr_assert(file_is(8 * 512, 8 * 512, true), "discarded range not zero");
	cr_assert(file_is(40 * 512, 3 * 512, true), "write-zeroes range not zero");
	cr_assert(file_is(80 * 512, 16 * 512, true), "write-zeroes+unmap range not zero");
	cr_assert(file_is(43 * 512, 512, false), "write-zeroes went past its range");
	cr_assert(file_is(96 * 512, 512, false), "write-zeroes went past its range");
	cr_assert(file_is(7 * 512, 512, false), "discard started early");
	struct stat st;
	cr_assert_eq(fstat(img_fd, &st), 0);
	cr_assert_eq(st.st_size, (off_t)IMG_SIZE, "the image changed size");
}

BOTH(discard_write_zeroes_validation)
{
	struct req a, b, c, d, e, f;
	struct seg two[3];

	a = req_range(VIRTIO_BLK_T_DISCARD, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	b = req_range(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 2);
	c = req_range(VIRTIO_BLK_T_WRITE_ZEROES, IMG_SECTORS - 4, 8, 0);
	d = req_range(VIRTIO_BLK_T_DISCARD, UINT64_MAX - 2, 8, 0);
	e = req_data(VIRTIO_BLK_T_DISCARD, 0, DATA2_GPA + 0x8000, 8, false); /* half a segment */
	/* Two segments where max_discard_seg is 1. */
	memset(host(DATA2_GPA + 0x9000), 0, 32);
	two[0] = (struct seg){put_hdr(VIRTIO_BLK_T_DISCARD, 0), 16, false};
	two[1] = (struct seg){DATA2_GPA + 0x9000, 32, false};
	two[2] = (struct seg){STATUS_GPA + 200, 1, true};
	f = (struct req){.status_gpa = STATUS_GPA + 200};
	f.head = add_chain(two, 3);
	run();
	cr_assert_eq(status_of(a), VIRTIO_BLK_S_UNSUPP, "unmap flag on a discard");
	cr_assert_eq(status_of(b), VIRTIO_BLK_S_UNSUPP, "reserved flag");
	cr_assert_eq(status_of(c), VIRTIO_BLK_S_IOERR, "range past the end");
	cr_assert_eq(status_of(d), VIRTIO_BLK_S_IOERR, "overflowing range");
	cr_assert_eq(status_of(e), VIRTIO_BLK_S_IOERR, "short segment");
	cr_assert_eq(status_of(f), VIRTIO_BLK_S_UNSUPP, "two segments");
	cr_assert(file_is(0, IMG_SIZE, false), "a rejected request touched the image");
}

BOTH(short_header)
{
	struct seg s[2] = {{HDR_GPA, 8, false}, {STATUS_GPA, 1, true}};
	struct req r = {.status_gpa = STATUS_GPA};

	*host(STATUS_GPA) = 0xee;
	r.head = add_chain(s, 2);
	run();
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_IOERR), 1);
	cr_assert_eq(needs_resets, 0);
}

BOTH(unknown_type_is_unsupp)
{
	struct req r = req_data(99, 0, DATA_GPA, 512, true);
	struct req s = req_data(VIRTIO_BLK_T_OUT | VIRTIO_BLK_T_BARRIER, 0, DATA_GPA, 512, false);

	run();
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_UNSUPP), 1);
	cr_assert_eq(expect_used(s, VIRTIO_BLK_S_UNSUPP), 1);
	cr_assert(file_is(0, 512, false));
}

BOTH(sector_beyond_end)
{
	static const uint64_t bad[] = {
	    IMG_SECTORS,     /* one past the end */
	    IMG_SECTORS - 1, /* starts inside, 2 sectors long */
	    1ULL << 63,	     /* sector * 512 overflows */
	    (1ULL << 55),    /* sector * 512 wraps to 0 */
	    UINT64_MAX,	     /* sector + count overflows */
	};
	struct req r[10];

	memset(host(DATA_GPA), 0x77, 1024);
	for (int i = 0; i < 5; i++) {
		r[2 * i] = req_data(VIRTIO_BLK_T_IN, bad[i], DATA2_GPA, 1024, true);
		r[2 * i + 1] = req_data(VIRTIO_BLK_T_OUT, bad[i], DATA_GPA, 1024, false);
	}
	run();
	for (int i = 0; i < 10; i++)
		cr_assert_eq(expect_used(r[i], VIRTIO_BLK_S_IOERR), 1, "request %d", i);
	cr_assert(file_is(0, IMG_SIZE, false), "an out-of-range write touched the image");
	struct stat st;
	cr_assert_eq(fstat(img_fd, &st), 0);
	cr_assert_eq(st.st_size, (off_t)IMG_SIZE, "an out-of-range write grew the image");
	cr_assert_eq(virtio_blk_stats(dev)->ioerr, 10);

	/* The last sector itself is fine. */
	r[0] = req_data(VIRTIO_BLK_T_IN, IMG_SECTORS - 1, DATA2_GPA, 512, true);
	run();
	cr_assert_eq(expect_used(r[0], VIRTIO_BLK_S_OK), 513);
}

BOTH(data_not_a_sector_multiple)
{
	struct req r = req_data(VIRTIO_BLK_T_IN, 0, DATA_GPA, 511, true);
	struct req w = req_data(VIRTIO_BLK_T_OUT, 0, DATA_GPA, 513, false);

	memset(host(DATA_GPA), 0x42, 1024);
	run();
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_IOERR), 1);
	cr_assert_eq(expect_used(w, VIRTIO_BLK_S_IOERR), 1);
	cr_assert(file_is(0, 1024, false));
}

BOTH(missing_status_byte)
{
	/* Only readable buffers: nowhere to put a status. Pushed back with len 0. */
	struct seg s[2] = {{put_hdr(VIRTIO_BLK_T_OUT, 0), 16, false}, {DATA_GPA, 512, false}};
	struct req r = {.status_gpa = STATUS_GPA};
	struct vring_used_elem *e;
	struct req ok;

	memset(host(DATA_GPA), 0x99, 512);
	r.head = add_chain(s, 2);
	slot++;
	run();
	cr_assert_eq(used_idx(), 1);
	e = &used()->ring[0];
	used_seen++;
	cr_assert_eq(e->id, r.head);
	cr_assert_eq(e->len, 0);
	cr_assert_eq(virtio_blk_stats(dev)->malformed, 1);
	cr_assert(file_is(0, 512, false), "a request without status wrote the image");
	cr_assert_eq(needs_resets, 0);

	/* The queue keeps working. */
	ok = req_data(VIRTIO_BLK_T_IN, 0, DATA2_GPA, 512, true);
	run();
	cr_assert_eq(expect_used(ok, VIRTIO_BLK_S_OK), 513);
}

BOTH(too_many_segments)
{
	/* Indirect table: header, 255 data buffers (seg_max is 254), status. */
	unsigned int n = 0;
	struct req r = {.status_gpa = STATUS_GPA};

	set_desc_in(TABLE_GPA, n, put_hdr(VIRTIO_BLK_T_IN, 0), 16, VRING_DESC_F_NEXT, n + 1);
	n++;
	for (unsigned int i = 0; i < BLK_SEG_MAX + 1; i++, n++)
		set_desc_in(TABLE_GPA, n, DATA_GPA + i * 512, 512,
			    VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, n + 1);
	set_desc_in(TABLE_GPA, n, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
	n++;
	set_desc_in(DESC_GPA, 0, TABLE_GPA, n * 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	r.head = 0;
	run();
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_IOERR), 1);

	/* With exactly seg_max data buffers it goes through. */
	n = 0;
	set_desc_in(TABLE_GPA, n, HDR_GPA, 16, VRING_DESC_F_NEXT, n + 1);
	n++;
	for (unsigned int i = 0; i < BLK_SEG_MAX; i++, n++)
		set_desc_in(TABLE_GPA, n, DATA_GPA + i * 512, 512,
			    VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, n + 1);
	set_desc_in(TABLE_GPA, n, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
	n++;
	set_desc_in(DESC_GPA, 1, TABLE_GPA, n * 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(1);
	r.head = 1;
	run();
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_OK), BLK_SEG_MAX * 512 + 1);
	cr_assert(file_is(0, 512, false));
	cr_assert_eq(host(DATA_GPA)[0], pattern(0));
	cr_assert_eq(host(DATA_GPA + 100 * 512)[17], pattern(100 * 512 + 17));
}

BOTH(broken_ring_sets_needs_reset)
{
	avail()->ring[0] = QSIZE + 5; /* head out of range */
	drv_avail_idx = 1;
	__atomic_store_n(&avail()->idx, drv_avail_idx, __ATOMIC_RELEASE);
	run();
	cr_assert_eq(needs_resets, 1);
	cr_assert_eq(used_idx(), 0);
	cr_assert_eq(virtio_blk_stats(dev)->queue_errors, 1);
}

BOTH(write_through_mode)
{
	uint8_t off = 0;
	struct req w, z;

	/* The driver turns the cache off: every write is durable when it completes. */
	dev->ops->config_write(dev, offsetof(struct virtio_blk_config, wce), &off, 1);
	dev->ops->config_read(dev, offsetof(struct virtio_blk_config, wce), &off, 1);
	cr_assert_eq(off, 0);
	memset(host(DATA_GPA), 0x3c, 1024);
	w = req_data(VIRTIO_BLK_T_OUT, 20, DATA_GPA, 1024, false);
	z = req_range(VIRTIO_BLK_T_WRITE_ZEROES, 30, 2, 0);
	run();
	cr_assert_eq(status_of(w), VIRTIO_BLK_S_OK);
	cr_assert_eq(status_of(z), VIRTIO_BLK_S_OK);
	cr_assert_arr_eq(host(DATA_GPA), (uint8_t[1024]){[0 ... 1023] = 0x3c}, 1024);
	cr_assert(file_is(30 * 512, 1024, true));
	uint8_t file[1024];
	file_read(20 * 512, file, sizeof(file));
	cr_assert_arr_eq(file, host(DATA_GPA), 1024);
}

BOTH(reset_then_work_again)
{
	struct req r;

	r = req_data(VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, true);
	(void)r;
	kick();
	/* Whatever is in flight is waited for and forgotten (io_uring: nothing pushed). */
	dev->ops->reset(dev);
	if (!strcmp(engine, "io_uring"))
		cr_assert_eq(used_idx(), 0, "a request completed after reset was pushed");
	/* Requests after reset but before activation are ignored. */
	kick();
	bring_up();
	memset(host(USED_GPA), 0, 8);
	used_seen = 0;
	slot = 0;
	r = req_data(VIRTIO_BLK_T_IN, 1, DATA_GPA, 512, true);
	run();
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_OK), 513);
	cr_assert_eq(host(DATA_GPA)[5], pattern(512 + 5));
}

/* ---- io_uring specifics ---- */

Test(blk_uring, completions_arrive_through_the_event_loop)
{
	struct req r[4];
	struct timespec ts = {0, 1000000};

	start_dev("io_uring", false);
	cr_assert_eq(event_loop_start(&loop, NULL), 0);
	for (int i = 0; i < 4; i++)
		r[i] = req_data(VIRTIO_BLK_T_IN, i, DATA_GPA + i * 512, 512, true);
	/* No wait_idle: only the eventfd on the running loop can complete these. */
	kick();
	for (int i = 0; i < 5000 && used_idx() != 4; i++)
		nanosleep(&ts, NULL);
	cr_assert_eq(used_idx(), 4);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(status_of(r[i]), VIRTIO_BLK_S_OK);
	cr_assert_eq(host(DATA_GPA + 3 * 512)[9], pattern(3 * 512 + 9));
	cr_assert_geq(__atomic_load_n(&signals[0], __ATOMIC_SEQ_CST), 1);
}

Test(blk_uring, head_reused_while_in_flight)
{
	struct req r;

	start_dev("io_uring", false);
	r = req_data(VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, true);
	make_avail(r.head); /* the same chain again, still in flight */
	run();
	cr_assert_eq(needs_resets, 1);
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_OK), 513);
	cr_assert_eq(used_idx(), 1);
}

/* ---- the engines' write-zeroes fallback to plain writes ---- */

static int wz_result;

static void wz_complete(struct blk_backend *be, struct blk_req *r, int res)
{
	(void)be;
	(void)r;
	wz_result = res;
}

static void wz_fallback(const struct blk_engine_ops *ops)
{
	/* Both fallocate ways marked unsupported: the engine must write zeros itself. */
	struct blk_backend be = {.fd = img_fd,
				 .event_fd = -1,
				 .complete = wz_complete,
				 .no_punch = true,
				 .no_zero_range = true};
	struct blk_req r = {.op = BLK_OP_WRITE_ZEROES, .offset = 4096, .len = 8192, .unmap = true};

	wz_result = 1;
	cr_assert_eq(ops->init(&be, 8, NULL), 0);
	ops->submit(&be, &r);
	ops->kick(&be);
	while (wz_result == 1)
		ops->reap(&be, true);
	ops->fini(&be);
	cr_assert_eq(wz_result, 0);
	cr_assert(file_is(4096, 8192, true));
	cr_assert(file_is(4096 + 8192, 512, false));
	cr_assert(file_is(0, 4096, false));
}

Test(blk, write_zeroes_falls_back_to_writes_sync)
{
	wz_fallback(&blk_sync_engine);
}

#ifdef HAVE_LIBURING
Test(blk, write_zeroes_falls_back_to_writes_uring)
{
	wz_fallback(&blk_uring_engine);
}
#endif

/* ---- configuration, features, opening ---- */

static struct virtio_blk_config read_config(void)
{
	struct virtio_blk_config c;

	memset(&c, 0xaa, sizeof(c));
	dev->ops->config_read(dev, 0, (uint8_t *)&c, dev->config_len);
	return c;
}

Test(blk, config_space)
{
	struct virtio_blk_config c;
	uint8_t tail[8];

	start_dev("sync", false);
	cr_assert_eq(dev->device_id, VIRTIO_ID_BLOCK);
	cr_assert_eq(dev->config_len, offsetof(struct virtio_blk_config, max_secure_erase_sectors));
	c = read_config();
	cr_assert_eq(c.capacity, IMG_SECTORS);
	cr_assert_eq(virtio_blk_capacity(dev), IMG_SECTORS);
	cr_assert_eq(c.seg_max, QSIZE - 2);
	cr_assert_eq(dev->queue_max_size, QSIZE);
	cr_assert_gt(c.size_max, 4096);
	cr_assert_eq(c.blk_size, 512);
	cr_assert_eq(c.num_queues, 1);
	cr_assert_eq(c.wce, 1);
	cr_assert_eq(c.max_discard_seg, 1);
	cr_assert_eq(c.max_write_zeroes_seg, 1);
	cr_assert_gt(c.max_discard_sectors, 0);
	cr_assert_gt(c.max_write_zeroes_sectors, 0);
	cr_assert_gt(c.discard_sector_alignment, 0);
	cr_assert_eq(c.write_zeroes_may_unmap, 1);
	cr_assert_eq(c.min_io_size, 1);

	/* Reads past the end are zeros; a partial read gets the bytes that exist. */
	memset(tail, 0xaa, sizeof(tail));
	dev->ops->config_read(dev, dev->config_len - 4, tail, 8);
	cr_assert_eq(tail[4], 0);
	cr_assert_eq(tail[7], 0);
	/* Only the writeback byte is writable; reset restores it. */
	tail[0] = 0;
	dev->ops->config_write(dev, 0, tail, 1);
	cr_assert_eq(read_config().capacity, IMG_SECTORS);
	dev->ops->config_write(dev, offsetof(struct virtio_blk_config, wce), tail, 1);
	cr_assert_eq(read_config().wce, 0);
	dev->ops->reset(dev);
	cr_assert_eq(read_config().wce, 1);
}

Test(blk, features_read_write)
{
	uint64_t f;

	start_dev("sync", false);
	f = dev->host_features;
	cr_assert(f & (1ULL << VIRTIO_BLK_F_SEG_MAX));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_SIZE_MAX));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_BLK_SIZE));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_FLUSH));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_CONFIG_WCE));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_TOPOLOGY));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_DISCARD));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	cr_assert(f & (1ULL << VIRTIO_RING_F_EVENT_IDX));
	cr_assert(f & (1ULL << VIRTIO_RING_F_INDIRECT_DESC));
	cr_assert_not(f & (1ULL << VIRTIO_BLK_F_RO));
	cr_assert_not(f & (1ULL << VIRTIO_BLK_F_MQ));
	cr_assert_eq(dev->num_queues, 1);
}

Test(blk, features_readonly)
{
	uint64_t f;

	start_dev("sync", true);
	f = dev->host_features;
	cr_assert(f & (1ULL << VIRTIO_BLK_F_RO));
	cr_assert_not(f & (1ULL << VIRTIO_BLK_F_DISCARD));
	cr_assert_not(f & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_FLUSH));
}

Test(blk, multiqueue)
{
	struct blk_options o = {.path = img_path, .num_queues = 4};
	struct kerr err;
	struct virtio_blk_config c;

	cr_assert_eq(create(&o, &dev, &err), 0, "%s", err.msg);
	cr_assert(dev->host_features & (1ULL << VIRTIO_BLK_F_MQ));
	cr_assert_eq(dev->num_queues, 4);
	c = read_config();
	cr_assert_eq(c.num_queues, 4);

	o.num_queues = VIRTIO_MAX_QUEUES + 1;
	cr_assert_eq(create(&o, &dev, &err), -1);
	cr_assert(strstr(err.msg, "num_queues"), "%s", err.msg);
}

static void readonly_checks(void)
{
	struct req w, z, d, f, r;

	memset(host(DATA_GPA), 0x55, 512);
	w = req_data(VIRTIO_BLK_T_OUT, 0, DATA_GPA, 512, false);
	z = req_range(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0);
	d = req_range(VIRTIO_BLK_T_DISCARD, 0, 8, 0);
	f = req_data(VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	r = req_data(VIRTIO_BLK_T_IN, 0, DATA2_GPA, 512, true);
	run();
	cr_assert_eq(expect_used(w, VIRTIO_BLK_S_IOERR), 1);
	cr_assert_eq(expect_used(z, VIRTIO_BLK_S_IOERR), 1);
	cr_assert_eq(expect_used(d, VIRTIO_BLK_S_IOERR), 1);
	cr_assert_eq(expect_used(f, VIRTIO_BLK_S_OK), 1);
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_OK), 513);
	cr_assert_eq(host(DATA2_GPA)[0], pattern(0));
	cr_assert(file_is(0, IMG_SIZE, false), "a read-only disk was written");
}

Test(blk_sync, readonly_disk)
{
	start_dev("sync", true);
	readonly_checks();
}

Test(blk_uring, readonly_disk)
{
	start_dev("io_uring", true);
	readonly_checks();
}

Test(blk, direct_io_round_trip)
{
	struct blk_options o = {.path = img_path, .direct = true};
	struct kerr err;
	struct req w, r;

	if (create(&o, &dev, &err) < 0) {
		cr_assert(strstr(err.msg, "direct=on"), "%s", err.msg);
		cr_skip_test("no O_DIRECT on /tmp: %s", err.msg);
	}
	bring_up();
	memset(host(DATA_GPA), 0x6d, 4096);
	w = req_data(VIRTIO_BLK_T_OUT, 16, DATA_GPA, 4096, false);
	run();
	cr_assert_eq(expect_used(w, VIRTIO_BLK_S_OK), 1);
	r = req_data(VIRTIO_BLK_T_IN, 16, DATA2_GPA, 4096, true);
	run();
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_OK), 4097);
	cr_assert_arr_eq(host(DATA2_GPA), host(DATA_GPA), 4096);
}

Test(blk, lock_conflict)
{
	struct blk_options rw = {.path = img_path}, ro = {.path = img_path, .readonly = true};
	struct virtio_dev *other = NULL, *third = NULL;
	struct kerr err = {.msg = ""};
	char want[128];

	cr_assert_eq(create(&rw, &dev, &err), 0, "%s", err.msg);
	snprintf(want, sizeof(want), "disk '%s' is in use by another process (locked)", img_path);
	cr_assert_eq(create(&rw, &other, &err), -1);
	cr_assert_str_eq(err.msg, want);
	cr_assert_eq(create(&ro, &other, &err), -1);
	cr_assert_str_eq(err.msg, want);
	virtio_blk_destroy(dev);
	dev = NULL;

	/* Readers share; a writer is then kept out. */
	cr_assert_eq(create(&ro, &other, &err), 0, "%s", err.msg);
	cr_assert_eq(create(&ro, &third, &err), 0, "%s", err.msg);
	cr_assert_eq(create(&rw, &dev, &err), -1);
	cr_assert_str_eq(err.msg, want);
	virtio_blk_destroy(other);
	virtio_blk_destroy(third);
	cr_assert_eq(create(&rw, &dev, &err), 0, "%s", err.msg);
}

Test(blk, bad_images)
{
	struct blk_options o = {.path = img_path};
	struct kerr err = {.msg = ""};
	struct virtio_dev *d = NULL;

	cr_assert_eq(ftruncate(img_fd, IMG_SIZE - 100), 0);
	cr_assert_eq(create(&o, &d, &err), -1);
	cr_assert(strstr(err.msg, "not a multiple of 512"), "%s", err.msg);

	cr_assert_eq(ftruncate(img_fd, 0), 0);
	cr_assert_eq(create(&o, &d, &err), -1);
	cr_assert(strstr(err.msg, "empty"), "%s", err.msg);

	o.path = "/tmp";
	cr_assert_eq(create(&o, &d, &err), -1);
	cr_assert(strstr(err.msg, "not a regular file or block device"), "%s", err.msg);

	o.path = "/nonexistent/disk.img";
	cr_assert_eq(create(&o, &d, &err), -1);
	cr_assert(strstr(err.msg, "No such file"), "%s", err.msg);
	cr_assert_null(strchr(err.msg, '\n'));
}

Test(blk, engine_selection)
{
	struct blk_options o = {.path = img_path};
	struct kerr err = {.msg = ""};

	cr_assert_eq(setenv("KESTREL_BLK_ENGINE", "sync", 1), 0);
	cr_assert_eq(create(&o, &dev, &err), 0, "%s", err.msg);
	cr_assert_str_eq(virtio_blk_engine(dev), "sync");
	virtio_blk_destroy(dev);
	dev = NULL;

	cr_assert_eq(setenv("KESTREL_BLK_ENGINE", "posix-aio", 1), 0);
	cr_assert_eq(create(&o, &dev, &err), -1);
	cr_assert(strstr(err.msg, "KESTREL_BLK_ENGINE"), "%s", err.msg);

	/* Default: io_uring when available, else sync saying why. */
	cr_assert_eq(unsetenv("KESTREL_BLK_ENGINE"), 0);
	cr_assert_eq(create(&o, &dev, &err), 0, "%s", err.msg);
	cr_assert(!strcmp(virtio_blk_engine(dev), "io_uring") ||
		      !strncmp(virtio_blk_engine(dev), "sync (", 6),
		  "%s", virtio_blk_engine(dev));
}
