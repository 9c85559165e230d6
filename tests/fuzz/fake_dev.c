/*
 * A small device for fuzzing a transport alone: like an entropy device, it fills every
 * writable buffer the driver posts and hands the chain back, so queues, interrupts and resets
 * are exercised with no back end of its own.
 */
#include "tests/fuzz/fake_dev.h"

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/harness.h"

#define FAKE_ID 4 /* entropy device: any id works for the transport */
#define FAKE_QUEUES 2
#define FAKE_QMAX 256
#define FAKE_CFG_LEN 8

struct fake {
	struct virtio_dev dev;
	uint8_t cfg[FAKE_CFG_LEN];
	struct virtq_chain chain;
};

static void fake_config_read(struct virtio_dev *d, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct fake *f = d->priv;

	memcpy(data, f->cfg + offset, len);
}

static void fake_config_write(struct virtio_dev *d, uint32_t offset, const uint8_t *data,
			      uint32_t len)
{
	struct fake *f = d->priv;

	memcpy(f->cfg + offset, data, len);
}

static int fake_activate(struct virtio_dev *d)
{
	(void)d;
	return 0;
}

static void fake_reset(struct virtio_dev *d)
{
	(void)d;
}

/* Like an entropy device: fills every writable byte, then hands the chain back. */
static void fake_queue_notify(struct virtio_dev *d, uint16_t q)
{
	struct fake *f = d->priv;
	struct virtqueue *vq = &d->vqs[q];
	static const uint8_t junk[64] = {0xa5};

	while (virtq_pop(vq, &f->chain) == 1) {
		uint32_t n = virtq_chain_write(&f->chain, 0, junk, sizeof(junk));
		virtq_push(vq, f->chain.head, n);
		virtio_dev_notify(d, q);
	}
	if (vq->broken)
		d->transport->needs_reset(d);
}

static const struct virtio_dev_ops fake_ops = {
    .config_read = fake_config_read,
    .config_write = fake_config_write,
    .activate = fake_activate,
    .reset = fake_reset,
    .queue_notify = fake_queue_notify,
};

struct virtio_dev *fake_dev_create(const struct guest_mem *mem, struct event_loop *loop)
{
	struct fake *f = calloc(1, sizeof(*f));

	(void)loop;
	if (!f)
		fuzz_die("out of memory");
	f->dev = (struct virtio_dev){
	    .name = "fake",
	    .device_id = FAKE_ID,
	    .ops = &fake_ops,
	    .priv = f,
	    .mem = mem,
	    .host_features = (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			     (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << 3) | (1ULL << 35),
	    .config_len = FAKE_CFG_LEN,
	    .num_queues = FAKE_QUEUES,
	    .queue_max_size = FAKE_QMAX,
	};
	return &f->dev;
}

void fake_dev_destroy(struct virtio_dev *d)
{
	free(d->priv);
}
