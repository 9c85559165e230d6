/* virtio-blk requests that succeed, on both engines: reads, writes, flush, get-id, discard, write
 * zeroes. */
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
	struct fx_seg s[5] = {
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
	struct fx_seg w[2] = {{DATA_GPA, 16 + 512, false}, {STATUS_GPA, 1, true}};
	struct fx_seg r[2] = {{HDR_GPA, 16, false}, {DATA2_GPA, 513, true}};
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
