/*
 * virtio-blk behind virtio-pci on a 64 KiB temp-file image. The sync engine keeps runs
 * reproducible; KESTREL_BLK_ENGINE=io_uring in the environment picks io_uring instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/fuzz/harness.h"
#include "virtio/blk.h"

#define IMG_SIZE (64 * 1024)

static char img_path[] = "/tmp/kestrel-fuzz-blk-XXXXXX";
static int img_fd = -1;

static void remove_image(void)
{
	unlink(img_path);
}

static void init(void)
{
	if (setenv("KESTREL_BLK_ENGINE", "sync", 0))
		fuzz_die("setenv failed");
	img_fd = mkstemp(img_path);
	if (img_fd < 0)
		fuzz_die("cannot create the disk image");
	atexit(remove_image);
}

static struct virtio_dev *create(const struct guest_mem *mem, struct event_loop *loop)
{
	struct blk_options o = {.path = img_path};
	struct virtio_dev *d;
	struct kerr err;

	/* Every input starts from the same (zeroed) disk. */
	if (ftruncate(img_fd, 0) || ftruncate(img_fd, IMG_SIZE))
		fuzz_die("cannot reset the disk image");
	if (virtio_blk_create(&d, &o, mem, loop, "vda", &err))
		fuzz_die(err.msg);
	return d;
}

/* Any op: wait for the requests in flight (io_uring) as shutdown would. */
static void op(struct virtio_dev *d, uint8_t sub, const uint8_t *data, size_t len)
{
	(void)sub, (void)data, (void)len;
	virtio_blk_wait_idle(d);
}

const struct fuzz_target fuzz_target = {
    .init = init,
    .create = create,
    .op = op,
    .destroy = virtio_blk_destroy,
};
