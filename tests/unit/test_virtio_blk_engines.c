/* virtio-blk engine behaviour: write-through, reset with requests in flight, io_uring completions,
 * the write-zeroes fallback. */
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
TestSuite(blk_mem, .init = suite_init_mem, .fini = suite_fini);

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
	rq.used_seen = 0;
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

Test(blk_mem, an_image_in_memory_gets_the_sync_engine)
{
	struct req w, r;

	if (!blk_fd_in_memory(img_fd))
		cr_skip_test("%s is not in memory here", img_path);
	start_dev(ENGINE_AUTO, false);
	cr_assert_str_eq(virtio_blk_engine(dev), "sync (image in memory)");
	memset(host(DATA_GPA), 0x5a, 4096);
	w = req_data(VIRTIO_BLK_T_OUT, 8, DATA_GPA, 4096, false);
	r = req_data(VIRTIO_BLK_T_IN, 64, DATA2_GPA, 4096, true);
	/* No reap, no event loop: done by the time the kick returns. */
	kick();
	cr_assert_eq(used_idx(), 2);
	cr_assert_eq(expect_used(w, VIRTIO_BLK_S_OK), 1);
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_OK), 4097);
	cr_assert_eq(host(DATA2_GPA)[7], pattern(64 * 512 + 7));
	uint8_t file[4096];
	file_read(8 * 512, file, sizeof(file));
	cr_assert_arr_eq(file, host(DATA_GPA), sizeof(file));
	cr_assert_geq(__atomic_load_n(&signals[0], __ATOMIC_SEQ_CST), 1);
}

Test(blk_mem, io_uring_forced_on_an_image_in_memory_uses_the_ring)
{
	struct req w;

	if (!blk_fd_in_memory(img_fd))
		cr_skip_test("%s is not in memory here", img_path);
	start_dev("io_uring", false);
	w = req_data(VIRTIO_BLK_T_OUT, 8, DATA_GPA, 4096, false);
	run();
	cr_assert_eq(expect_used(w, VIRTIO_BLK_S_OK), 1);
}

Test(blk, only_regular_files_count_as_in_memory)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct stat st;

	/* A device node lives on devtmpfs, but its I/O goes to the device. */
	cr_assert_geq(fd, 0);
	cr_assert_not(blk_fd_in_memory(fd));
	close(fd);
	if (stat("/dev/shm", &st) == 0) {
		char path[] = "/dev/shm/kestrel-mem-XXXXXX";

		fd = mkstemp(path);
		cr_assert_geq(fd, 0);
		unlink(path);
		cr_assert(blk_fd_in_memory(fd));
		close(fd);
	}
	cr_assert_not(blk_fd_in_memory(-1));
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
