/* virtio-blk requests a guest gets wrong, on both engines: each fails alone and the queue goes on.
 */
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

BOTH(discard_write_zeroes_validation)
{
	struct req a, b, c, d, e, f;
	struct fx_seg two[3];

	a = req_range(VIRTIO_BLK_T_DISCARD, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	b = req_range(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 2);
	c = req_range(VIRTIO_BLK_T_WRITE_ZEROES, IMG_SECTORS - 4, 8, 0);
	d = req_range(VIRTIO_BLK_T_DISCARD, UINT64_MAX - 2, 8, 0);
	e = req_data(VIRTIO_BLK_T_DISCARD, 0, DATA2_GPA + 0x8000, 8, false); /* half a segment */
	/* Two segments where max_discard_seg is 1. */
	memset(host(DATA2_GPA + 0x9000), 0, 32);
	two[0] = (struct fx_seg){put_hdr(VIRTIO_BLK_T_DISCARD, 0), 16, false};
	two[1] = (struct fx_seg){DATA2_GPA + 0x9000, 32, false};
	two[2] = (struct fx_seg){STATUS_GPA + 200, 1, true};
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
	struct fx_seg s[2] = {{HDR_GPA, 8, false}, {STATUS_GPA, 1, true}};
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
	struct fx_seg s[2] = {{put_hdr(VIRTIO_BLK_T_OUT, 0), 16, false}, {DATA_GPA, 512, false}};
	struct req r = {.status_gpa = STATUS_GPA};
	struct vring_used_elem *e;
	struct req ok;

	memset(host(DATA_GPA), 0x99, 512);
	r.head = add_chain(s, 2);
	slot++;
	run();
	cr_assert_eq(used_idx(), 1);
	e = &used()->ring[0];
	rq.used_seen++;
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

	fx_set_desc(TABLE_GPA, n, put_hdr(VIRTIO_BLK_T_IN, 0), 16, VRING_DESC_F_NEXT, n + 1);
	n++;
	for (unsigned int i = 0; i < BLK_SEG_MAX + 1; i++, n++)
		fx_set_desc(TABLE_GPA, n, DATA_GPA + i * 512, 512,
			    VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, n + 1);
	fx_set_desc(TABLE_GPA, n, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
	n++;
	fx_set_desc(DESC_GPA, 0, TABLE_GPA, n * 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	r.head = 0;
	run();
	cr_assert_eq(expect_used(r, VIRTIO_BLK_S_IOERR), 1);

	/* With exactly seg_max data buffers it goes through. */
	n = 0;
	fx_set_desc(TABLE_GPA, n, HDR_GPA, 16, VRING_DESC_F_NEXT, n + 1);
	n++;
	for (unsigned int i = 0; i < BLK_SEG_MAX; i++, n++)
		fx_set_desc(TABLE_GPA, n, DATA_GPA + i * 512, 512,
			    VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, n + 1);
	fx_set_desc(TABLE_GPA, n, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
	n++;
	fx_set_desc(DESC_GPA, 1, TABLE_GPA, n * 16, VRING_DESC_F_INDIRECT, 0);
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
	rq.avail_idx = 1;
	__atomic_store_n(&avail()->idx, rq.avail_idx, __ATOMIC_RELEASE);
	run();
	cr_assert_eq(needs_resets, 1);
	cr_assert_eq(used_idx(), 0);
	cr_assert_eq(virtio_blk_stats(dev)->queue_errors, 1);
}
