#include <criterion/criterion.h>
#include <endian.h>
#include <linux/virtio_config.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture_virtio_net.h"

struct event_loop loop;
struct virtio_dev *dev;
int peer[4] = {-1, -1, -1, -1}; /* the "network" end of each pair's socketpair */
static uint64_t next_buf;
bool small_sndbuf;

/* ---- fake transport ---- */

static int fake_kick_fd(struct virtio_dev *d, uint16_t q)
{
	(void)d;
	(void)q;
	cr_assert_fail("kick_fd called without vhost");
	return -1;
}

static void fake_poll_kicks(struct virtio_dev *d, uint16_t q, bool poll)
{
	(void)d;
	(void)q;
	(void)poll;
	cr_assert_fail("poll_kicks called without vhost");
}

static int fake_call_fd(struct virtio_dev *d, uint16_t q)
{
	(void)d;
	(void)q;
	return -1;
}

const struct virtio_transport_ops fake_transport = {
    .signal_queue = fx_signal_queue,
    .signal_config = fx_signal_config,
    .needs_reset = fx_needs_reset,
    .kick_fd = fake_kick_fd,
    .poll_kicks = fake_poll_kicks,
    .call_fd = fake_call_fd,
};

/* ---- fake driver ---- */

struct fx_vring drv[VIRTIO_MAX_QUEUES];

uint64_t desc_gpa(unsigned int q)
{
	return RING_BASE + q * 0x4000ULL;
}

uint64_t avail_gpa(unsigned int q)
{
	return desc_gpa(q) + 0x1000;
}

uint64_t used_gpa(unsigned int q)
{
	return desc_gpa(q) + 0x2000;
}

void drv_reset(void)
{
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		fx_vring_init(&drv[q], QSIZE, desc_gpa(q), avail_gpa(q), used_gpa(q));
}

struct vring_avail *avail(unsigned int q)
{
	return fx_avail(&drv[q]);
}

struct vring_used *used(unsigned int q)
{
	return fx_used(&drv[q]);
}

uint16_t used_idx(unsigned int q)
{
	return fx_used_idx(&drv[q]);
}

uint64_t alloc_buf(uint32_t len)
{
	uint64_t gpa = next_buf;

	next_buf += (len + 63) & ~63ULL;
	cr_assert_lt(next_buf, RAM_SIZE);
	return gpa;
}

uint16_t add_chain(unsigned int q, const struct fx_seg *s, unsigned int n)
{
	return fx_add_chain(&drv[q], s, n);
}

/* One writable buffer of len bytes on receive queue q; returns its gpa. */
uint64_t post_rx(unsigned int q, uint32_t len, uint16_t *head)
{
	struct fx_seg s = {alloc_buf(len), len, true};
	uint16_t h = add_chain(q, &s, 1);

	if (head)
		*head = h;
	return s.gpa;
}

/* EVENT_IDX: the avail_event the device publishes after the used ring. */
uint16_t avail_event(unsigned int q)
{
	uint16_t v;

	memcpy(&v, host(used_gpa(q) + 4 + 8 * QSIZE), sizeof(v));
	return v;
}

/* The next used element of q, or NULL. */
struct vring_used_elem *take_used(unsigned int q)
{
	return fx_take_used(&drv[q]);
}

/* ---- the event loop, by hand ---- */

bool is_device_event(const struct epoll_event *e)
{
	return e->data.ptr && e->data.ptr != &loop.call_handler;
}

/* Runs what epoll reports now, a few rounds; returns how many device events ran. */
int pump(void)
{
	struct epoll_event evs[16];
	int total = 0;

	for (int round = 0; round < 8; round++) {
		int n = epoll_wait(loop.epfd, evs, 16, 0);
		int ran = 0;

		for (int i = 0; i < n; i++) {
			struct event_handler *h = evs[i].data.ptr;

			if (!is_device_event(&evs[i]))
				continue;
			h->fn(h->opaque, evs[i].events);
			ran++;
		}
		if (!ran)
			break;
		total += ran;
	}
	return total;
}

/* Device fds epoll would report now (without running them). */
int pending_device_events(uint32_t mask)
{
	struct epoll_event evs[16];
	int n = epoll_wait(loop.epfd, evs, 16, 0), count = 0;

	for (int i = 0; i < n; i++)
		if (is_device_event(&evs[i]) && (evs[i].events & mask))
			count++;
	return count;
}

/* ---- setup ---- */

void suite_init(void)
{
	fx_guest_mem_map(RAM_SIZE);
	drv_reset();
	cr_assert_eq(event_loop_init(&loop, NULL), 0);
	next_buf = BUF_GPA;
}

void suite_fini(void)
{
	virtio_net_destroy(dev);
	dev = NULL;
	for (int i = 0; i < 4; i++)
		if (peer[i] >= 0)
			close(peer[i]);
	event_loop_destroy(&loop);
	fx_guest_mem_unmap();
}

struct net_options opts(void)
{
	struct net_options o = {.tap_fd = -1, .queues = 1, .vhost = NET_VHOST_OFF};

	return o;
}

/* A device on pairs socketpairs. */
void create_raw(unsigned int pairs, const struct net_options *o)
{
	int fds[4], sv[2];
	struct kerr err = {.msg = ""};

	for (unsigned int i = 0; i < pairs; i++) {
		cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
		peer[i] = sv[0];
		fds[i] = sv[1];
		/* Socketpairs have no queue limit: a small send buffer makes "the tap" fill up. */
		if (small_sndbuf)
			cr_assert_eq(
			    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &(int){1}, sizeof(int)), 0);
	}
	cr_assert_eq(virtio_net_create_fds(&dev, o, fds, pairs, &gm, &loop, &err), 0, "%s",
		     err.msg);
	/* The device keeps its own dups. */
	for (unsigned int i = 0; i < pairs; i++)
		close(fds[i]);
	dev->transport = &fake_transport;
}

/* Sets up every queue with features f and activates; returns activate's result. */
int bring_up(uint64_t f)
{
	dev->guest_features = f;
	memset(host(RING_BASE), 0, (size_t)dev->num_queues * 0x4000);
	drv_reset();
	for (uint16_t q = 0; q < dev->num_queues; q++) {
		virtq_reset(&dev->vqs[q]);
		cr_assert_eq(virtq_setup(&dev->vqs[q], &gm, QSIZE, desc_gpa(q), avail_gpa(q),
					 used_gpa(q), f, NULL),
			     0);
	}
	return dev->ops->activate(dev);
}

uint64_t all_features(void)
{
	return dev->host_features | F(VIRTIO_F_VERSION_1);
}

void start(uint64_t drop)
{
	struct net_options o = opts();

	create_raw(1, &o);
	cr_assert_eq(bring_up(all_features() & ~drop), 0);
}

void send_frame(int fd, size_t hdr_len, const uint8_t *data, size_t len)
{
	uint8_t buf[70000];

	memset(buf, 0, hdr_len);
	memcpy(buf + hdr_len, data, len);
	cr_assert_eq(send(fd, buf, hdr_len + len, 0), (ssize_t)(hdr_len + len));
}

void fill(uint8_t *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 13 + seed);
}

uint16_t num_buffers_at(uint64_t gpa)
{
	struct virtio_net_hdr_mrg_rxbuf h;

	memcpy(&h, host(gpa), sizeof(h));
	return le16toh(h.num_buffers);
}

/* ---- the control queue ---- */

/* Sends class/cmd with data; returns the ack byte (0xee if untouched). */
uint8_t ctrl(uint8_t class, uint8_t cmd, const void *data, size_t len)
{
	uint16_t cq = (uint16_t)(dev->num_queues - 1);
	struct fx_seg s[3];
	uint64_t ack = alloc_buf(1);
	struct vring_used_elem *e;
	unsigned int n = 0;

	s[n] = (struct fx_seg){alloc_buf(2), 2, false};
	host(s[n].gpa)[0] = class;
	host(s[n].gpa)[1] = cmd;
	n++;
	if (len) {
		s[n] = (struct fx_seg){alloc_buf((uint32_t)len), (uint32_t)len, false};
		memcpy(host(s[n].gpa), data, len);
		n++;
	}
	s[n++] = (struct fx_seg){ack, 1, true};
	*host(ack) = 0xee;
	add_chain(cq, s, n);
	dev->ops->queue_notify(dev, cq);
	e = take_used(cq);
	cr_assert_not_null(e);
	cr_assert_eq(e->len, 1);
	return *host(ack);
}
