/* virtio-blk configuration space, features, multiqueue, read-only disks, O_DIRECT, locking and
 * opening images. */
#include <criterion/criterion.h>
#include <fcntl.h>
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

#include "fixture_virtio_blk.h"
#include "virtio/blk_backend.h"

TestSuite(blk_sync, .init = suite_init, .fini = suite_fini);
TestSuite(blk_uring, .init = suite_init, .fini = suite_fini);
TestSuite(blk, .init = suite_init, .fini = suite_fini);

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

	/* Default: sync for an image in memory, else io_uring when available, else sync saying
	 * why. */
	cr_assert_eq(unsetenv("KESTREL_BLK_ENGINE"), 0);
	cr_assert_eq(create(&o, &dev, &err), 0, "%s", err.msg);
	if (blk_fd_in_memory(img_fd))
		cr_assert_str_eq(virtio_blk_engine(dev), "sync (image in memory)");
	else
		cr_assert(!strcmp(virtio_blk_engine(dev), "io_uring") ||
			      !strncmp(virtio_blk_engine(dev), "sync (io_uring unavailable", 26) ||
			      !strcmp(virtio_blk_engine(dev), "sync (built without liburing)"),
			  "%s", virtio_blk_engine(dev));
}
