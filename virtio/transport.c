#include "virtio/transport.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* What a register write leaves to do once t->lock is dropped. */
enum {
	DO_RESET = 1,
	DO_ACTIVATE = 2,
	DO_CONFIG_CHANGED = 4,
};

static uint64_t offered(const struct virtio_dev *d)
{
	return d->host_features | (1ULL << VIRTIO_F_VERSION_1);
}

static void clear_registers(struct virtio_transport *t)
{
	struct virtio_dev *d = t->dev;

	t->status = 0;
	t->activate_pending = t->active = false;
	t->device_features_sel = t->driver_features_sel = 0;
	t->driver_features = 0;
	t->queue_sel = 0;
	for (uint16_t q = 0; q < d->num_queues; q++)
		t->queues[q] = (struct vt_queue){.size = d->queue_max_size};
}

static void on_kick(void *opaque, uint32_t events)
{
	struct vt_kick *k = opaque;
	struct virtio_transport *t = k->t;
	uint64_t v;

	(void)events;
	if (read(k->h.fd, &v, sizeof(v)) < 0)
		return;
	if (vt_queue_live(t, k->index)) {
		/* Atomic: a reset on the device's other loop may touch the queue meanwhile. */
		__atomic_fetch_add(&t->dev->vqs[k->index].stats.kicks, 1, __ATOMIC_RELAXED);
		t->dev->ops->queue_notify(t->dev, k->index);
	}
}

/* Where q's kicks are polled: the device may want a loop of its own for a queue. */
static struct event_loop *kick_loop(struct virtio_transport *t, uint16_t q)
{
	struct event_loop *el = NULL;

	if (t->dev->ops->queue_loop)
		el = t->dev->ops->queue_loop(t->dev, q);
	return el ? el : t->loop;
}

static int setup_kicks(struct virtio_transport *t, struct kerr *err)
{
	for (uint16_t q = 0; q < t->dev->num_queues; q++) {
		struct vt_kick *k = &t->kicks[q];

		k->t = t;
		k->index = q;
		k->h = (struct event_handler){eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), on_kick, k};
		if (k->h.fd < 0)
			return kerr_set(err, "eventfd: %s", strerror(errno));
		k->loop = kick_loop(t, q);
		if (event_loop_add(k->loop, &k->h, EPOLLIN, err))
			return -1;
		k->polled = true;
	}
	return 0;
}

int vt_init(struct virtio_transport *t, struct virtio_dev *dev, struct event_loop *loop,
	    const struct vt_frontend_ops *fe_ops, void *fe, struct kerr *err)
{
	uint16_t max = dev->queue_max_size;

	if (dev->num_queues == 0 || dev->num_queues > VIRTIO_MAX_QUEUES)
		return kerr_set(err, "%s: %u queues (1..%u)", dev->name, dev->num_queues,
				VIRTIO_MAX_QUEUES);
	if (max == 0 || max > VIRTQ_MAX_SIZE || (max & (max - 1)))
		return kerr_set(err, "%s: queue size %u is not a power of two up to %u", dev->name,
				max, VIRTQ_MAX_SIZE);
	memset(t, 0, sizeof(*t));
	t->dev = dev;
	t->loop = loop;
	t->fe_ops = fe_ops;
	t->fe = fe;
	dev->vt = t;
	pthread_mutex_init(&t->lock, NULL);
	for (uint16_t q = 0; q < VIRTIO_MAX_QUEUES; q++)
		t->kicks[q].h.fd = -1;
	dev->guest_features = 0;
	clear_registers(t);
	if (setup_kicks(t, err)) {
		vt_destroy(t);
		return -1;
	}
	return 0;
}

void vt_destroy(struct virtio_transport *t)
{
	for (uint16_t q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct vt_kick *k = &t->kicks[q];

		if (k->h.fd < 0)
			continue;
		if (k->polled)
			event_loop_del(k->loop, &k->h);
		close(k->h.fd);
		k->h.fd = -1;
	}
	pthread_mutex_destroy(&t->lock);
}

/* ---- work handed to the event loop, which owns the device ---- */

static void do_reset(void *arg)
{
	struct virtio_transport *t = arg;
	struct virtio_dev *d = t->dev;

	d->ops->reset(d);
	for (uint16_t q = 0; q < d->num_queues; q++)
		virtq_reset(&d->vqs[q]);
	d->guest_features = 0;
	pthread_mutex_lock(&t->lock);
	clear_registers(t);
	t->resetting = false;
	pthread_mutex_unlock(&t->lock);
	/* Front-end state goes last: an interrupt the stopped device raised is dropped too. */
	t->fe_ops->reset(t->fe);
}

static void do_activate(void *arg)
{
	struct virtio_transport *t = arg;
	struct virtio_dev *d = t->dev;
	bool go;

	/* A reset requested after DRIVER_OK but run before this cancels the activation. */
	pthread_mutex_lock(&t->lock);
	go = t->activate_pending && !t->resetting;
	t->activate_pending = false;
	pthread_mutex_unlock(&t->lock);
	if (!go)
		return;
	if (d->ops->activate(d)) {
		vt_needs_reset(t);
		return;
	}
	pthread_mutex_lock(&t->lock);
	t->active = true;
	pthread_mutex_unlock(&t->lock);
	/* Drivers may kick before DRIVER_OK; those kicks were ignored, so look now. */
	for (uint16_t q = 0; q < d->num_queues; q++)
		if (vt_queue_live(t, q))
			d->ops->queue_notify(d, q);
}

static void run(struct virtio_transport *t, unsigned int todo)
{
	/* Synchronous: when the driver's write returns, the reset or activation is done. */
	if (todo & DO_RESET)
		event_loop_call(t->loop, do_reset, t);
	if (todo & DO_ACTIVATE)
		event_loop_call(t->loop, do_activate, t);
	if (todo & DO_CONFIG_CHANGED)
		t->fe_ops->config_changed(t->fe);
}

/* ---- device status ---- */

static bool features_acceptable(struct virtio_transport *t, uint64_t f)
{
	struct virtio_dev *d = t->dev;

	if ((f & ~offered(d)) || !(f & (1ULL << VIRTIO_F_VERSION_1)))
		return false;
	return !d->ops->validate_features || d->ops->validate_features(d, f);
}

static unsigned int status_write(struct virtio_transport *t, uint8_t v)
{
	uint8_t old = t->status, add;

	if (v == 0) {
		t->resetting = true;
		t->activate_pending = false;
		return DO_RESET;
	}
	/* NEEDS_RESET is the device's to set; the driver only ever adds bits. */
	v &= (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;
	if (old & ~v & ~VIRTIO_CONFIG_S_NEEDS_RESET) {
		vt_count_error(t);
		return 0;
	}
	add = v & ~old;
	if (add & VIRTIO_CONFIG_S_FEATURES_OK) {
		if (features_acceptable(t, t->driver_features)) {
			t->dev->guest_features = t->driver_features;
		} else {
			/* The driver reads FEATURES_OK back and gives up when it is clear. */
			vt_count_error(t);
			add &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
		}
	}
	t->status |= add;
	if (!(add & VIRTIO_CONFIG_S_DRIVER_OK))
		return 0;
	if (!(t->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		vt_count_error(t);
		t->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
		return DO_CONFIG_CHANGED;
	}
	t->activate_pending = true;
	return DO_ACTIVATE;
}

/* ---- queues ---- */

static struct vt_queue *selected(struct virtio_transport *t)
{
	return t->queue_sel < t->dev->num_queues ? &t->queues[t->queue_sel] : NULL;
}

/* Queue configuration is frozen while enabled and after DRIVER_OK; it needs FEATURES_OK. */
static bool queue_writable(struct virtio_transport *t, const struct vt_queue *tq)
{
	return tq && !tq->enabled && (t->status & VIRTIO_CONFIG_S_FEATURES_OK) &&
	       !(t->status & VIRTIO_CONFIG_S_DRIVER_OK);
}

static void size_write(struct virtio_transport *t, struct vt_queue *tq, uint32_t v)
{
	if (v == 0 || v > t->dev->queue_max_size || (v & (v - 1))) {
		vt_count_error(t);
		tq->size_bad = true;
		return;
	}
	tq->size = (uint16_t)v;
	tq->size_bad = false;
}

static unsigned int queue_enable(struct virtio_transport *t, struct vt_queue *tq, uint32_t v)
{
	struct virtio_dev *d = t->dev;
	uint16_t q = (uint16_t)(tq - t->queues);

	if (v != 1)
		return 0; /* the spec has no disabling write; 0 is what a reset leaves */
	if (tq->size_bad || virtq_setup(&d->vqs[q], d->mem, tq->size, tq->desc, tq->avail, tq->used,
					d->guest_features, NULL)) {
		vt_count_error(t);
		t->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
		return DO_CONFIG_CHANGED;
	}
	tq->enabled = true;
	return 0;
}

static void set_half(uint64_t *reg, bool high, uint32_t v)
{
	if (high)
		*reg = (*reg & 0xffffffffULL) | ((uint64_t)v << 32);
	else
		*reg = (*reg & ~0xffffffffULL) | v;
}

static unsigned int queue_write(struct virtio_transport *t, enum vt_reg reg, uint32_t v)
{
	struct vt_queue *tq = selected(t);

	if (!queue_writable(t, tq)) {
		vt_count_error(t);
		return 0;
	}
	switch (reg) {
	case VT_QUEUE_SIZE:
		size_write(t, tq, v);
		return 0;
	case VT_QUEUE_ENABLE:
		return queue_enable(t, tq, v);
	case VT_QUEUE_DESC_LO:
	case VT_QUEUE_DESC_HI:
		set_half(&tq->desc, reg == VT_QUEUE_DESC_HI, v);
		return 0;
	case VT_QUEUE_AVAIL_LO:
	case VT_QUEUE_AVAIL_HI:
		set_half(&tq->avail, reg == VT_QUEUE_AVAIL_HI, v);
		return 0;
	case VT_QUEUE_USED_LO:
	case VT_QUEUE_USED_HI:
		set_half(&tq->used, reg == VT_QUEUE_USED_HI, v);
		return 0;
	default:
		return 0;
	}
}

/* ---- registers ---- */

static uint32_t queue_read(struct virtio_transport *t, enum vt_reg reg)
{
	const struct vt_queue *tq = selected(t);

	if (!tq)
		return 0;
	switch (reg) {
	case VT_QUEUE_SIZE_MAX:
		return t->dev->queue_max_size;
	case VT_QUEUE_SIZE:
		return tq->size;
	case VT_QUEUE_ENABLE:
		return tq->enabled;
	case VT_QUEUE_DESC_LO:
		return (uint32_t)tq->desc;
	case VT_QUEUE_DESC_HI:
		return (uint32_t)(tq->desc >> 32);
	case VT_QUEUE_AVAIL_LO:
		return (uint32_t)tq->avail;
	case VT_QUEUE_AVAIL_HI:
		return (uint32_t)(tq->avail >> 32);
	case VT_QUEUE_USED_LO:
		return (uint32_t)tq->used;
	case VT_QUEUE_USED_HI:
		return (uint32_t)(tq->used >> 32);
	default:
		return 0;
	}
}

static uint32_t read_locked(struct virtio_transport *t, enum vt_reg reg)
{
	switch (reg) {
	case VT_DEVICE_FEATURES_SEL:
		return t->device_features_sel;
	case VT_DEVICE_FEATURES:
		return t->device_features_sel < 2
			   ? (uint32_t)(offered(t->dev) >> (32 * t->device_features_sel))
			   : 0;
	case VT_DRIVER_FEATURES_SEL:
		return t->driver_features_sel;
	case VT_DRIVER_FEATURES:
		return t->driver_features_sel < 2
			   ? (uint32_t)(t->driver_features >> (32 * t->driver_features_sel))
			   : 0;
	case VT_NUM_QUEUES:
		return t->dev->num_queues;
	case VT_STATUS:
		return t->status;
	case VT_CONFIG_GENERATION:
		return t->config_generation;
	case VT_QUEUE_SEL:
		return t->queue_sel;
	default:
		return queue_read(t, reg);
	}
}

uint32_t vt_read(struct virtio_transport *t, enum vt_reg reg)
{
	uint32_t v;

	pthread_mutex_lock(&t->lock);
	v = read_locked(t, reg);
	pthread_mutex_unlock(&t->lock);
	return v;
}

static unsigned int write_locked(struct virtio_transport *t, enum vt_reg reg, uint32_t v)
{
	/* Until the device has stopped, the reset is still going on: the driver waits. */
	if (t->resetting)
		return 0;
	switch (reg) {
	case VT_DEVICE_FEATURES_SEL:
		t->device_features_sel = v;
		return 0;
	case VT_DRIVER_FEATURES_SEL:
		t->driver_features_sel = v;
		return 0;
	case VT_DRIVER_FEATURES:
		/* Frozen once FEATURES_OK was accepted. */
		if (t->driver_features_sel >= 2 || (t->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
			vt_count_error(t);
			return 0;
		}
		set_half(&t->driver_features, t->driver_features_sel == 1, v);
		return 0;
	case VT_STATUS:
		return status_write(t, (uint8_t)v);
	case VT_QUEUE_SEL:
		t->queue_sel = (uint16_t)v;
		return 0;
	case VT_DEVICE_FEATURES:
	case VT_NUM_QUEUES:
	case VT_CONFIG_GENERATION:
	case VT_QUEUE_SIZE_MAX:
		return 0; /* read-only */
	default:
		return queue_write(t, reg, v);
	}
}

void vt_write(struct virtio_transport *t, enum vt_reg reg, uint32_t value)
{
	unsigned int todo;

	pthread_mutex_lock(&t->lock);
	todo = write_locked(t, reg, value);
	pthread_mutex_unlock(&t->lock);
	if (todo)
		run(t, todo);
}

/* ---- for the device and the front end ---- */

void vt_config_access(struct virtio_transport *t, uint64_t off, uint8_t *data, unsigned int size,
		      bool is_write)
{
	struct virtio_dev *d = t->dev;

	if (off >= d->config_len || size > d->config_len - off) {
		if (!is_write)
			memset(data, 0, size);
	} else if (is_write) {
		d->ops->config_write(d, (uint32_t)off, data, size);
	} else {
		d->ops->config_read(d, (uint32_t)off, data, size);
	}
}

void vt_needs_reset(struct virtio_transport *t)
{
	bool tell;

	pthread_mutex_lock(&t->lock);
	vt_count_error(t);
	tell =
	    !(t->status & VIRTIO_CONFIG_S_NEEDS_RESET) && (t->status & VIRTIO_CONFIG_S_DRIVER_OK);
	t->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	pthread_mutex_unlock(&t->lock);
	if (tell)
		t->fe_ops->config_changed(t->fe);
}

void vt_config_generation_bump(struct virtio_transport *t)
{
	pthread_mutex_lock(&t->lock);
	t->config_generation++;
	pthread_mutex_unlock(&t->lock);
}

bool vt_queue_live(struct virtio_transport *t, uint16_t q)
{
	bool live;

	pthread_mutex_lock(&t->lock);
	live = q < t->dev->num_queues && t->active && !t->resetting &&
	       !(t->status & VIRTIO_CONFIG_S_NEEDS_RESET) && t->queues[q].enabled;
	pthread_mutex_unlock(&t->lock);
	return live;
}

int vt_kick_fd(struct virtio_transport *t, uint16_t q)
{
	return q < t->dev->num_queues ? t->kicks[q].h.fd : -1;
}

void vt_kick(struct virtio_transport *t, uint32_t q)
{
	uint64_t one = 1;

	if (q >= t->dev->num_queues)
		return;
	__atomic_fetch_add(&t->dev->vqs[q].stats.exit_kicks, 1, __ATOMIC_RELAXED);
	if (write(t->kicks[q].h.fd, &one, sizeof(one)) != sizeof(one)) {
		pthread_mutex_lock(&t->lock);
		vt_count_error(t);
		pthread_mutex_unlock(&t->lock);
	}
}

void vt_poll_kicks(struct virtio_transport *t, uint16_t q, bool poll)
{
	struct vt_kick *k;

	if (q >= t->dev->num_queues)
		return;
	k = &t->kicks[q];
	if (k->polled == poll)
		return;
	if (poll)
		k->polled = event_loop_add(k->loop, &k->h, EPOLLIN, NULL) == 0;
	else if (event_loop_del(k->loop, &k->h) == 0)
		k->polled = false;
}

void vt_op_needs_reset(struct virtio_dev *d)
{
	vt_needs_reset(d->vt);
}

int vt_op_kick_fd(struct virtio_dev *d, uint16_t q)
{
	return vt_kick_fd(d->vt, q);
}

void vt_op_poll_kicks(struct virtio_dev *d, uint16_t q, bool poll)
{
	vt_poll_kicks(d->vt, q, poll);
}

bool vt_driver_ok(struct virtio_transport *t)
{
	bool ok;

	pthread_mutex_lock(&t->lock);
	ok = (t->status & VIRTIO_CONFIG_S_DRIVER_OK) && !t->resetting;
	pthread_mutex_unlock(&t->lock);
	return ok;
}

void vt_count_error(struct virtio_transport *t)
{
	__atomic_add_fetch(&t->errors, 1, __ATOMIC_RELAXED);
}

uint64_t vt_errors(struct virtio_transport *t)
{
	return __atomic_load_n(&t->errors, __ATOMIC_RELAXED);
}
