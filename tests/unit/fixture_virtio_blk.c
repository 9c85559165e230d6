#include <criterion/criterion.h>
#include <linux/virtio_blk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture_virtio_blk.h"
#include "virtio/blk_backend.h"

struct event_loop loop;
struct virtio_dev *dev;
char img_path[64] = "";
int img_fd = -1; /* the test's own view of the image */
struct fx_vring rq;
unsigned int slot;
const char *engine = "sync";

/* ---- fake guest memory and rings ---- */

struct vring_avail *avail(void)
{
	return fx_avail(&rq);
}

struct vring_used *used(void)
{
	return fx_used(&rq);
}

uint16_t used_idx(void)
{
	return fx_used_idx(&rq);
}

void make_avail(uint16_t head)
{
	fx_make_avail(&rq, head);
}

/* Puts a chain of n buffers in the descriptor table and makes it available; returns the head. */
uint16_t add_chain(const struct fx_seg *s, unsigned int n)
{
	return fx_add_chain(&rq, s, n);
}

uint64_t put_hdr(uint32_t type, uint64_t sector)
{
	uint64_t gpa = HDR_GPA + slot * 64;
	struct virtio_blk_outhdr h = {.type = type, .ioprio = 0, .sector = sector};

	memcpy(host(gpa), &h, sizeof(h));
	return gpa;
}

/* header | data (readable for writes, writable for reads) | status */
struct req req_data(uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t len,
		    bool data_writable)
{
	struct req r;
	struct fx_seg s[3];
	unsigned int n = 0;

	r.status_gpa = STATUS_GPA + slot;
	*host(r.status_gpa) = 0xee;
	s[n++] = (struct fx_seg){put_hdr(type, sector), sizeof(struct virtio_blk_outhdr), false};
	if (len)
		s[n++] = (struct fx_seg){data_gpa, len, data_writable};
	s[n++] = (struct fx_seg){r.status_gpa, 1, true};
	slot++;
	r.head = add_chain(s, n);
	return r;
}

struct req req_range(uint32_t type, uint64_t sector, uint32_t num, uint32_t flags)
{
	uint64_t gpa = DATA2_GPA + slot * 16;
	struct virtio_blk_discard_write_zeroes range = {
	    .sector = sector, .num_sectors = num, .flags = flags};

	memcpy(host(gpa), &range, sizeof(range));
	return req_data(type, 0, gpa, sizeof(range), false);
}

void kick(void)
{
	dev->ops->queue_notify(dev, 0);
}

void run(void)
{
	kick();
	virtio_blk_wait_idle(dev);
}

uint8_t status_of(struct req r)
{
	return *host(r.status_gpa);
}

/* The next used element, which must be for r. */
uint32_t expect_used(struct req r, uint8_t status)
{
	struct vring_used_elem *e;

	cr_assert_gt((uint16_t)(used_idx() - rq.used_seen), 0, "request %u not completed", r.head);
	e = &used()->ring[rq.used_seen % QSIZE];
	rq.used_seen++;
	cr_assert_eq(e->id, r.head);
	cr_assert_eq(status_of(r), status, "status %u, want %u", status_of(r), status);
	return e->len;
}

uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + 3 + (off >> 9));
}

void file_read(uint64_t off, void *buf, size_t len)
{
	cr_assert_eq(pread(img_fd, buf, len, off), (ssize_t)len);
}

bool file_is(uint64_t off, size_t len, bool zero)
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

void make_image_in(const char *dir, uint64_t size)
{
	uint8_t *buf = malloc(size);

	snprintf(img_path, sizeof(img_path), "%s/kestrel-blk-XXXXXX", dir);
	img_fd = mkstemp(img_path);
	cr_assert_geq(img_fd, 0);
	for (uint64_t i = 0; i < size; i++)
		buf[i] = pattern(i);
	cr_assert_eq(pwrite(img_fd, buf, size, 0), (ssize_t)size);
	free(buf);
}

int create(const struct blk_options *o, struct virtio_dev **out, struct kerr *err)
{
	return virtio_blk_create(out, o, &gm, &loop, "vda", err);
}

/* Negotiates everything offered and enables queue 0 (and others for MQ). */
void bring_up(void)
{
	uint64_t f = dev->host_features | (1ULL << VIRTIO_F_VERSION_1);

	dev->transport = &fx_transport;
	dev->guest_features = f;
	memset(host(DESC_GPA), 0, HDR_GPA - DESC_GPA);
	fx_vring_init(&rq, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA);
	virtq_reset(&dev->vqs[0]);
	cr_assert_eq(virtq_setup(&dev->vqs[0], &gm, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, f, NULL),
		     0);
	cr_assert_eq(dev->ops->activate(dev), 0);
}

void start_dev(const char *eng, bool readonly)
{
	struct blk_options o = {.path = img_path, .readonly = readonly};
	struct kerr err = {.msg = ""};
	bool auto_pick = !strcmp(eng, ENGINE_AUTO);

	engine = eng;
	if (auto_pick)
		cr_assert_eq(unsetenv("KESTREL_BLK_ENGINE"), 0);
	else
		cr_assert_eq(setenv("KESTREL_BLK_ENGINE", eng, 1), 0);
	if (create(&o, &dev, &err) < 0) {
		if (!strcmp(eng, "io_uring") && strstr(err.msg, "io_uring"))
			cr_skip_test("io_uring unavailable here: %s", err.msg);
		cr_assert_fail("create: %s", err.msg);
	}
	if (!auto_pick)
		cr_assert_str_eq(virtio_blk_engine(dev), eng);
	bring_up();
}

static void suite_setup(const char *image_dir)
{
	fx_guest_mem_map(RAM_SIZE);
	fx_vring_init(&rq, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA);
	cr_assert_eq(event_loop_init(&loop, NULL), 0);
	make_image_in(image_dir, IMG_SIZE);
}

void suite_init(void)
{
	/* /var/tmp: on disk, so the default engine is io_uring, not the in-memory choice. */
	suite_setup("/var/tmp");
}

void suite_init_mem(void)
{
	/* Without /dev/shm the image lands on /tmp; tests skip if that is not in memory. */
	suite_setup(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
}

void suite_fini(void)
{
	event_loop_stop(&loop);
	virtio_blk_destroy(dev);
	dev = NULL;
	event_loop_destroy(&loop);
	if (img_fd >= 0)
		close(img_fd);
	if (img_path[0])
		unlink(img_path);
	fx_guest_mem_unmap();
}
