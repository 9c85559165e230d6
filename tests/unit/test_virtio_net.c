/*
 * virtio-net against a hand-written driver: rings are built in a fake 16 MiB guest RAM, the
 * tap is replaced by SOCK_SEQPACKET socketpairs handed in as fds (frames carry the virtio-net
 * header, as on a vnet-header tap), and the event loop is pumped by hand so each test sees
 * exactly which fds the device polls.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <linux/if_tun.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "virtio/net.h"
#include "virtio/net_tap.h"
#include "virtio/net_vhost.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"

#define MiB (1ULL << 20)
#define RAM_SIZE (16 * MiB)
#define QSIZE 256
#define RING_BASE 0x10000ULL /* queue q's rings at RING_BASE + q * 0x4000 */
#define BUF_GPA 0x100000ULL

#define F(b) (1ULL << (b))
#define HDR12 sizeof(struct virtio_net_hdr_mrg_rxbuf)
#define HDR10 sizeof(struct virtio_net_hdr)

static struct guest_mem gm;
static struct event_loop loop;
static struct virtio_dev *dev;
static int peer[4] = {-1, -1, -1, -1}; /* the "network" end of each pair's socketpair */
static uint64_t next_buf;
static bool small_sndbuf;
static unsigned int signals[VIRTIO_MAX_QUEUES], needs_resets, config_signals;

/* ---- fake transport ---- */

static void fake_signal_queue(struct virtio_dev *d, uint16_t q)
{
	(void)d;
	signals[q]++;
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

static const struct virtio_transport_ops fake_transport = {
    .signal_queue = fake_signal_queue,
    .signal_config = fake_signal_config,
    .needs_reset = fake_needs_reset,
    .kick_fd = fake_kick_fd,
    .poll_kicks = fake_poll_kicks,
    .call_fd = fake_call_fd,
};

/* ---- fake driver ---- */

struct drv_q {
	uint16_t avail_idx, next_desc, used_seen;
};
static struct drv_q drv[VIRTIO_MAX_QUEUES];

static uint8_t *host(uint64_t gpa)
{
	return gm.regions[0].host + gpa;
}

static uint64_t desc_gpa(unsigned int q)
{
	return RING_BASE + q * 0x4000ULL;
}

static uint64_t avail_gpa(unsigned int q)
{
	return desc_gpa(q) + 0x1000;
}

static uint64_t used_gpa(unsigned int q)
{
	return desc_gpa(q) + 0x2000;
}

static struct vring_avail *avail(unsigned int q)
{
	return (struct vring_avail *)host(avail_gpa(q));
}

static struct vring_used *used(unsigned int q)
{
	return (struct vring_used *)host(used_gpa(q));
}

static uint16_t used_idx(unsigned int q)
{
	return __atomic_load_n(&used(q)->idx, __ATOMIC_ACQUIRE);
}

static uint64_t alloc_buf(uint32_t len)
{
	uint64_t gpa = next_buf;

	next_buf += (len + 63) & ~63ULL;
	cr_assert_lt(next_buf, RAM_SIZE);
	return gpa;
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool w;
};

static uint16_t add_chain(unsigned int q, const struct seg *s, unsigned int n)
{
	struct drv_q *dq = &drv[q];
	uint16_t head;

	if (dq->next_desc + n > QSIZE)
		dq->next_desc = 0;
	head = dq->next_desc;
	for (unsigned int i = 0; i < n; i++) {
		struct vring_desc *d = (struct vring_desc *)host(desc_gpa(q)) + dq->next_desc;

		d->addr = s[i].gpa;
		d->len = s[i].len;
		d->flags = (s[i].w ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0);
		d->next = dq->next_desc + 1;
		dq->next_desc++;
	}
	avail(q)->ring[dq->avail_idx % QSIZE] = head;
	dq->avail_idx++;
	__atomic_store_n(&avail(q)->idx, dq->avail_idx, __ATOMIC_RELEASE);
	return head;
}

/* One writable buffer of len bytes on receive queue q; returns its gpa. */
static uint64_t post_rx(unsigned int q, uint32_t len, uint16_t *head)
{
	struct seg s = {alloc_buf(len), len, true};
	uint16_t h = add_chain(q, &s, 1);

	if (head)
		*head = h;
	return s.gpa;
}

/* EVENT_IDX: the avail_event the device publishes after the used ring. */
static uint16_t avail_event(unsigned int q)
{
	uint16_t v;

	memcpy(&v, host(used_gpa(q) + 4 + 8 * QSIZE), sizeof(v));
	return v;
}

/* The next used element of q, or NULL. */
static struct vring_used_elem *take_used(unsigned int q)
{
	struct drv_q *dq = &drv[q];
	struct vring_used_elem *e;

	if (used_idx(q) == dq->used_seen)
		return NULL;
	e = &used(q)->ring[dq->used_seen % QSIZE];
	dq->used_seen++;
	return e;
}

/* ---- the event loop, by hand ---- */

static bool is_device_event(const struct epoll_event *e)
{
	return e->data.ptr && e->data.ptr != &loop.call_handler;
}

/* Runs what epoll reports now, a few rounds; returns how many device events ran. */
static int pump(void)
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
static int pending_device_events(uint32_t mask)
{
	struct epoll_event evs[16];
	int n = epoll_wait(loop.epfd, evs, 16, 0), count = 0;

	for (int i = 0; i < n; i++)
		if (is_device_event(&evs[i]) && (evs[i].events & mask))
			count++;
	return count;
}

/* ---- setup ---- */

static void suite_init(void)
{
	struct guest_mem_region layout = {.gpa = 0, .size = RAM_SIZE};

	cr_assert_eq(guest_mem_map(&gm, &layout, 1, NULL), 0);
	cr_assert_eq(event_loop_init(&loop, NULL), 0);
	next_buf = BUF_GPA;
}

static void suite_fini(void)
{
	virtio_net_destroy(dev);
	dev = NULL;
	for (int i = 0; i < 4; i++)
		if (peer[i] >= 0)
			close(peer[i]);
	event_loop_destroy(&loop);
	guest_mem_unmap(&gm);
}

TestSuite(net, .init = suite_init, .fini = suite_fini);

static struct net_options opts(void)
{
	struct net_options o = {.tap_fd = -1, .queues = 1, .vhost = NET_VHOST_OFF};

	return o;
}

/* A device on pairs socketpairs. */
static void create_raw(unsigned int pairs, const struct net_options *o)
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
static int bring_up(uint64_t f)
{
	dev->guest_features = f;
	memset(host(RING_BASE), 0, (size_t)dev->num_queues * 0x4000);
	memset(drv, 0, sizeof(drv));
	for (uint16_t q = 0; q < dev->num_queues; q++) {
		virtq_reset(&dev->vqs[q]);
		cr_assert_eq(virtq_setup(&dev->vqs[q], &gm, QSIZE, desc_gpa(q), avail_gpa(q),
					 used_gpa(q), f, NULL),
			     0);
	}
	return dev->ops->activate(dev);
}

static uint64_t all_features(void)
{
	return dev->host_features | F(VIRTIO_F_VERSION_1);
}

static void start(uint64_t drop)
{
	struct net_options o = opts();

	create_raw(1, &o);
	cr_assert_eq(bring_up(all_features() & ~drop), 0);
}

static void send_frame(int fd, size_t hdr_len, const uint8_t *data, size_t len)
{
	uint8_t buf[70000];

	memset(buf, 0, hdr_len);
	memcpy(buf + hdr_len, data, len);
	cr_assert_eq(send(fd, buf, hdr_len + len, 0), (ssize_t)(hdr_len + len));
}

static void fill(uint8_t *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 13 + seed);
}

static uint16_t num_buffers_at(uint64_t gpa)
{
	struct virtio_net_hdr_mrg_rxbuf h;

	memcpy(&h, host(gpa), sizeof(h));
	return le16toh(h.num_buffers);
}

/* ---- creation, features, config ---- */

Test(net, features_and_config_on_a_raw_fd)
{
	struct net_options o = opts();
	uint8_t cfg[12], mac[6];
	uint64_t f;

	o.mtu = 9000;
	o.index = 2;
	create_raw(1, &o);
	f = dev->host_features;
	cr_assert_eq(dev->device_id, VIRTIO_ID_NET);
	cr_assert_eq(dev->num_queues, 3);
	cr_assert_eq(dev->config_len, 12);
	for (unsigned int b = 0; b < 64; b++) {
		bool want = b == VIRTIO_NET_F_MAC || b == VIRTIO_NET_F_MTU ||
			    b == VIRTIO_NET_F_STATUS || b == VIRTIO_NET_F_MRG_RXBUF ||
			    b == VIRTIO_RING_F_EVENT_IDX || b == VIRTIO_RING_F_INDIRECT_DESC ||
			    b == VIRTIO_NET_F_CTRL_VQ || b == VIRTIO_NET_F_CTRL_RX ||
			    b == VIRTIO_NET_F_CTRL_MAC_ADDR || b == VIRTIO_NET_F_GUEST_ANNOUNCE ||
			    b == VIRTIO_NET_F_CTRL_GUEST_OFFLOADS;

		/* No offloads on an fd that is not a tap; no MQ with one pair. */
		cr_assert_eq((f >> b) & 1, want, "feature bit %u", b);
	}
	cr_assert_eq(virtio_net_check_features(f | F(VIRTIO_F_VERSION_1), NULL), 0);
	dev->ops->config_read(dev, 0, cfg, sizeof(cfg));
	virtio_net_default_mac(mac, virtio_net_ifname(dev), 2);
	cr_assert_arr_eq(cfg, mac, 6);
	cr_assert_eq(cfg[6] | cfg[7] << 8, VIRTIO_NET_S_LINK_UP);
	cr_assert_eq(cfg[8] | cfg[9] << 8, 1);
	cr_assert_eq(cfg[10] | cfg[11] << 8, 9000);
	/* Partial and out-of-range reads. */
	dev->ops->config_read(dev, 10, cfg, 2);
	cr_assert_eq(cfg[0] | cfg[1] << 8, 9000);
	dev->ops->config_read(dev, 12, cfg, 4);
	cr_assert_eq(cfg[0] | cfg[1] | cfg[2] | cfg[3], 0);
	cr_assert_eq(strcmp(virtio_net_backend(dev), "tap"), 0);
}

Test(net, default_mac_is_stable_local_unicast)
{
	uint8_t a[6], b[6], c[6], d[6];

	virtio_net_default_mac(a, "tap0", 0);
	virtio_net_default_mac(b, "tap0", 0);
	virtio_net_default_mac(c, "tap0", 1);
	virtio_net_default_mac(d, "tap1", 0);
	cr_assert_arr_eq(a, b, 6);
	cr_assert_arr_neq(a, c, 6);
	cr_assert_arr_neq(a, d, 6);
	cr_assert(a[0] & 2, "locally administered");
	cr_assert_not(a[0] & 1, "unicast");
}

Test(net, given_mac_and_vhost_auto_fallback)
{
	struct net_options o = opts();
	const uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
	uint8_t cfg[6];

	memcpy(o.mac, mac, 6);
	o.mac_set = true;
	o.vhost = NET_VHOST_AUTO;
	create_raw(1, &o);
	dev->ops->config_read(dev, 0, cfg, 6);
	cr_assert_arr_eq(cfg, mac, 6);
	cr_assert(strstr(virtio_net_backend(dev), "tap (vhost-net unavailable"), "%s",
		  virtio_net_backend(dev));
}

Test(net, option_errors)
{
	struct net_options o = opts();
	struct kerr err = {.msg = ""};
	int sv[2];

	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "tap=NAME"), "%s", err.msg);

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	peer[0] = sv[0];
	peer[1] = sv[1];
	o.tap_fd = sv[1];
	o.queues = 2;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "queues=2 needs tap=NAME"), "%s", err.msg);

	o.queues = 1;
	o.vhost = NET_VHOST_ON;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "vhost=on needs a tap"), "%s", err.msg);

	o.vhost = NET_VHOST_OFF;
	o.mtu = 20;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "mtu=20"), "%s", err.msg);

	o.mtu = 0;
	o.mac_set = true;
	o.mac[0] = 0x01;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "multicast"), "%s", err.msg);

	o = opts();
	o.tap_fd = 1000;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "fd=1000 is not an open file descriptor"), "%s", err.msg);

	o = opts();
	o.tap_name = "a-name-that-is-far-too-long";
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "longer than"), "%s", err.msg);
	cr_assert_null(dev);
}

/* ---- feature rules ---- */

Test(net, feature_dependency_rules)
{
	static const struct {
		uint64_t f;
		const char *rule;
	} bad[] = {
	    {F(VIRTIO_NET_F_GUEST_TSO4), "GUEST_TSO4 needs GUEST_CSUM"},
	    {F(VIRTIO_NET_F_GUEST_TSO6), "GUEST_TSO6 needs GUEST_CSUM"},
	    {F(VIRTIO_NET_F_GUEST_UFO), "GUEST_UFO needs GUEST_CSUM"},
	    {F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_ECN), "GUEST_ECN needs"},
	    {F(VIRTIO_NET_F_HOST_TSO4), "HOST_TSO4 needs CSUM"},
	    {F(VIRTIO_NET_F_HOST_TSO6), "HOST_TSO6 needs CSUM"},
	    {F(VIRTIO_NET_F_HOST_UFO), "HOST_UFO needs CSUM"},
	    {F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_ECN), "HOST_ECN needs"},
	    {F(VIRTIO_NET_F_CTRL_RX), "CTRL_RX needs CTRL_VQ"},
	    {F(VIRTIO_NET_F_MQ), "MQ needs CTRL_VQ"},
	    {F(VIRTIO_NET_F_GUEST_ANNOUNCE), "GUEST_ANNOUNCE needs CTRL_VQ"},
	    {F(VIRTIO_NET_F_CTRL_MAC_ADDR), "CTRL_MAC_ADDR needs CTRL_VQ"},
	    {F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS), "CTRL_GUEST_OFFLOADS needs CTRL_VQ"},
	};
	const uint64_t good =
	    F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_ECN) |
	    F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN) |
	    F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) | F(VIRTIO_NET_F_MQ);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;

		cr_assert_eq(virtio_net_check_features(bad[i].f, &why), -1, "case %zu", i);
		cr_assert(why && strstr(why, bad[i].rule), "case %zu: %s", i, why);
	}
	cr_assert_eq(virtio_net_check_features(good, NULL), 0);
	cr_assert_eq(virtio_net_check_features(0, NULL), 0);
}

Test(net, activate_refuses_broken_feature_set)
{
	struct net_options o = opts();

	create_raw(1, &o);
	/* CTRL_RX without CTRL_VQ: the device fails DRIVER_OK (the transport sets NEEDS_RESET). */
	cr_assert_eq(bring_up(F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_CTRL_RX)), -1);
	cr_assert_eq(virtio_net_stats(dev)->feature_errors, 1);
	cr_assert_eq(pending_device_events(~0U), 0);
	dev->ops->reset(dev);
	cr_assert_eq(bring_up(all_features()), 0);
}

/* ---- RX ---- */

Test(net, rx_header_12_without_mrg_rxbuf)
{
	uint8_t data[100];
	struct vring_used_elem *e;
	struct virtio_net_info info;
	uint64_t gpa;
	uint16_t head;

	start(F(VIRTIO_NET_F_MRG_RXBUF));
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.hdr_len, 12);
	gpa = post_rx(0, 1526, &head);
	memset(host(gpa), 0xee, 1526);
	dev->ops->queue_notify(dev, 0);
	fill(data, sizeof(data), 1);
	send_frame(peer[0], HDR12, data, sizeof(data));
	cr_assert_gt(pump(), 0);
	e = take_used(0);
	cr_assert_not_null(e);
	cr_assert_eq(e->id, head);
	cr_assert_eq(e->len, 112);
	cr_assert_eq(num_buffers_at(gpa), 1, "num_buffers must be 1 without MRG_RXBUF");
	cr_assert_arr_eq(host(gpa + 12), data, sizeof(data));
	cr_assert_eq(*host(gpa + 112), 0xee, "wrote past the frame");
	cr_assert_eq(signals[0], 1);
	cr_assert_eq(virtio_net_stats(dev)->rx_frames, 1);
	cr_assert_eq(virtio_net_stats(dev)->rx_bytes, 100);
}

Test(net, rx_header_10_legacy)
{
	struct net_options o = opts();
	struct virtio_net_info info;
	uint8_t data[60];
	struct vring_used_elem *e;
	uint64_t gpa;

	create_raw(1, &o);
	/* No VERSION_1 and no MRG_RXBUF: the 10-byte header. */
	cr_assert_eq(bring_up(F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_CTRL_VQ)), 0);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.hdr_len, 10);
	gpa = post_rx(0, 1526, NULL);
	memset(host(gpa), 0xee, 1526);
	fill(data, sizeof(data), 2);
	send_frame(peer[0], HDR10, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	e = take_used(0);
	cr_assert_not_null(e);
	cr_assert_eq(e->len, 70);
	cr_assert_arr_eq(host(gpa + 10), data, sizeof(data));
	cr_assert_eq(*host(gpa + 70), 0xee);
}

Test(net, rx_mergeable_frame_spans_buffers)
{
	static uint8_t data[3000];
	uint64_t gpa[3];
	uint16_t head[3];
	struct vring_used_elem *e;

	start(0);
	for (int i = 0; i < 3; i++)
		gpa[i] = post_rx(0, 1500, &head[i]);
	fill(data, sizeof(data), 3);
	send_frame(peer[0], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_eq(used_idx(0), 3);
	for (int i = 0; i < 3; i++) {
		e = take_used(0);
		cr_assert_eq(e->id, head[i]);
		cr_assert_eq(e->len, i < 2 ? 1500 : 12);
	}
	cr_assert_eq(num_buffers_at(gpa[0]), 3);
	cr_assert_arr_eq(host(gpa[0] + 12), data, 1488);
	cr_assert_arr_eq(host(gpa[1]), data + 1488, 1500);
	cr_assert_arr_eq(host(gpa[2]), data + 2988, 12);
	/* One interrupt for the batch. */
	cr_assert_eq(signals[0], 1);
}

Test(net, rx_mergeable_runs_out_mid_frame_and_resumes)
{
	static uint8_t data[2500];
	uint64_t first, more[2];
	struct vring_used_elem *e;

	start(0);
	first = post_rx(0, 1000, NULL);
	fill(data, sizeof(data), 4);
	send_frame(peer[0], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	/* The filled buffer is held, not used: the driver only ever sees whole frames. */
	cr_assert_eq(used_idx(0), 0);
	cr_assert_eq(signals[0], 0);
	/* Waiting for buffers: the tap is not polled, kicks are wanted (avail_event current). */
	send_frame(peer[0], HDR12, data, 10);
	cr_assert_eq(pending_device_events(EPOLLIN), 0);
	cr_assert_eq(avail_event(0), 1);

	more[0] = post_rx(0, 1000, NULL);
	more[1] = post_rx(0, 1000, NULL);
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_geq(used_idx(0), 3);
	e = take_used(0);
	cr_assert_eq(e->len, 1000);
	e = take_used(0);
	cr_assert_eq(e->len, 1000);
	e = take_used(0);
	cr_assert_eq(e->len, 512);
	cr_assert_eq(num_buffers_at(first), 3);
	cr_assert_arr_eq(host(first + 12), data, 988);
	cr_assert_arr_eq(host(more[0]), data + 988, 1000);
	cr_assert_arr_eq(host(more[1]), data + 1988, 512);
	cr_assert_eq(virtio_net_stats(dev)->rx_frames, 1);
}

Test(net, rx_without_buffers_stops_polling_the_tap)
{
	uint8_t data[64];
	struct vring_used_elem *e;

	start(0);
	fill(data, sizeof(data), 5);
	send_frame(peer[0], HDR12, data, sizeof(data));
	/* No receive buffers: nothing polls the readable tap, nothing is read. */
	cr_assert_eq(pending_device_events(~0U), 0);
	cr_assert_eq(pump(), 0);
	/* Kicks are enabled so the driver tells us when it posts (EVENT_IDX: avail_event). */
	cr_assert_eq(avail_event(0), 0);
	cr_assert_eq(used(0)->flags & VRING_USED_F_NO_NOTIFY, 0);

	post_rx(0, 2048, NULL);
	dev->ops->queue_notify(dev, 0);
	e = take_used(0);
	cr_assert_not_null(e, "the waiting frame is delivered on the kick");
	cr_assert_eq(e->len, 12 + 64);
	/* Out of buffers again: the tap fd is no longer polled for input. */
	send_frame(peer[0], HDR12, data, sizeof(data));
	cr_assert_eq(pending_device_events(EPOLLIN), 0);
}

Test(net, rx_frame_too_big_without_mrg_is_dropped)
{
	uint8_t big[200], small[50];
	struct vring_used_elem *e;
	uint64_t gpa;

	start(F(VIRTIO_NET_F_MRG_RXBUF));
	gpa = post_rx(0, 100, NULL);
	fill(big, sizeof(big), 6);
	fill(small, sizeof(small), 7);
	send_frame(peer[0], HDR12, big, sizeof(big));
	send_frame(peer[0], HDR12, small, sizeof(small));
	dev->ops->queue_notify(dev, 0);
	pump();
	e = take_used(0);
	cr_assert_not_null(e);
	cr_assert_eq(e->len, 62, "the buffer went to the frame that fits");
	cr_assert_null(take_used(0));
	cr_assert_arr_eq(host(gpa + 12), small, sizeof(small));
	cr_assert_eq(virtio_net_stats(dev)->rx_too_big, 1);
}

Test(net, rx_short_frame_is_dropped)
{
	uint8_t tiny[5] = {1, 2, 3, 4, 5};
	uint8_t data[20];
	struct vring_used_elem *e;

	start(0);
	post_rx(0, 2048, NULL);
	cr_assert_eq(send(peer[0], tiny, sizeof(tiny), 0), 5);
	fill(data, sizeof(data), 8);
	send_frame(peer[0], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	e = take_used(0);
	cr_assert_not_null(e);
	cr_assert_eq(e->len, 32);
	cr_assert_null(take_used(0));
	cr_assert_eq(virtio_net_stats(dev)->rx_short, 1);
}

Test(net, rx_mergeable_first_buffer_smaller_than_header)
{
	uint8_t data[20];
	struct vring_used_elem *e;

	start(0);
	post_rx(0, 8, NULL);
	post_rx(0, 2048, NULL);
	fill(data, sizeof(data), 9);
	send_frame(peer[0], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	e = take_used(0);
	cr_assert_eq(e->len, 0, "the useless buffer goes back empty");
	e = take_used(0);
	cr_assert_eq(e->len, 32);
	cr_assert_eq(virtio_net_stats(dev)->rx_bad_buffers, 1);
}

/* ---- TX ---- */

static uint16_t tx_frame(const uint8_t *data, size_t len, uint8_t gso, uint8_t flags)
{
	struct virtio_net_hdr_mrg_rxbuf h = {.hdr = {.flags = flags, .gso_type = gso}};
	struct seg s[2] = {{alloc_buf(HDR12), HDR12, false},
			   {alloc_buf((uint32_t)len), (uint32_t)len, false}};

	memcpy(host(s[0].gpa), &h, sizeof(h));
	memcpy(host(s[1].gpa), data, len);
	return add_chain(1, s, len ? 2 : 1);
}

Test(net, tx_writes_header_and_frame)
{
	uint8_t data[300], got[1000];
	struct vring_used_elem *e;
	uint16_t head;

	start(0);
	fill(data, sizeof(data), 10);
	head = tx_frame(data, sizeof(data), 0, 0);
	dev->ops->queue_notify(dev, 1);
	cr_assert_eq(recv(peer[0], got, sizeof(got), MSG_DONTWAIT), 312);
	cr_assert_arr_eq(got + 12, data, sizeof(data));
	e = take_used(1);
	cr_assert_eq(e->id, head);
	cr_assert_eq(e->len, 0);
	cr_assert_eq(signals[1], 1);
	cr_assert_eq(virtio_net_stats(dev)->tx_frames, 1);
	cr_assert_eq(virtio_net_stats(dev)->tx_bytes, 300);
}

Test(net, tx_malformed_chains_are_dropped_and_completed)
{
	uint8_t data[64], got[256];
	struct seg wr[2] = {{alloc_buf(12), 12, false}, {alloc_buf(64), 64, true}};
	struct seg zero = {alloc_buf(16), 0, false};
	struct seg half = {alloc_buf(16), 6, false};
	const struct virtio_net_stats *st;

	start(F(VIRTIO_NET_F_HOST_TSO4));
	fill(data, sizeof(data), 11);
	add_chain(1, &zero, 1);					   /* empty (zero-length) */
	add_chain(1, &half, 1);					   /* shorter than the header */
	tx_frame(data, 0, 0, 0);				   /* header only: empty frame */
	add_chain(1, wr, 2);					   /* device-writable buffer */
	tx_frame(data, sizeof(data), VIRTIO_NET_HDR_GSO_TCPV4, 0); /* TSO not negotiated */
	tx_frame(data, sizeof(data), 0, 0);			   /* a good one */
	dev->ops->queue_notify(dev, 1);
	cr_assert_eq(used_idx(1), 6);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(take_used(1)->len, 0);
	cr_assert_eq(recv(peer[0], got, sizeof(got), MSG_DONTWAIT), 76, "only the good frame");
	cr_assert_eq(recv(peer[0], got, sizeof(got), MSG_DONTWAIT), -1);
	st = virtio_net_stats(dev);
	cr_assert_eq(st->tx_malformed, 4);
	cr_assert_eq(st->tx_empty, 1);
	cr_assert_eq(st->tx_frames, 1);
	cr_assert_eq(needs_resets, 0);
}

Test(net, tx_readable_after_writable_breaks_the_queue)
{
	struct seg bad[2] = {{alloc_buf(64), 64, true}, {alloc_buf(64), 64, false}};

	start(0);
	add_chain(1, bad, 2);
	dev->ops->queue_notify(dev, 1);
	cr_assert_eq(needs_resets, 1);
	cr_assert_eq(virtio_net_stats(dev)->queue_errors, 1);
	/* The device stays quiet until reset, then works again. */
	dev->ops->queue_notify(dev, 1);
	cr_assert_eq(needs_resets, 1);
	dev->ops->reset(dev);
	cr_assert_eq(bring_up(all_features()), 0);
	cr_assert_eq(needs_resets, 1);
}

Test(net, tx_eagain_stops_and_resumes_on_writable)
{
	uint8_t data[64], got[256];
	unsigned int sent = 0, total = 30;

	small_sndbuf = true;
	start(0);
	for (unsigned int i = 0; i < total; i++) {
		fill(data, sizeof(data), i);
		data[0] = (uint8_t)i;
		tx_frame(data, sizeof(data), 0, 0);
	}
	dev->ops->queue_notify(dev, 1);
	/* The socket takes only a few datagrams before EAGAIN. */
	cr_assert_lt(used_idx(1), total);
	cr_assert_gt(virtio_net_stats(dev)->tx_blocked, 0);
	for (;;) {
		ssize_t r = recv(peer[0], got, sizeof(got), MSG_DONTWAIT);

		if (r < 0)
			break;
		cr_assert_eq(r, 76);
		cr_assert_eq(got[12], (uint8_t)sent, "frames out of order");
		sent++;
	}
	cr_assert_eq(sent, used_idx(1));
	/* Now writable: EPOLLOUT resumes the queue without a kick. */
	while (sent < total) {
		ssize_t r;

		cr_assert_gt(pump(), 0, "stuck at %u", sent);
		while ((r = recv(peer[0], got, sizeof(got), MSG_DONTWAIT)) > 0) {
			cr_assert_eq(got[12], (uint8_t)sent, "frames out of order");
			sent++;
		}
	}
	cr_assert_eq(used_idx(1), total);
	cr_assert_eq(virtio_net_stats(dev)->tx_frames, total);
	/* Done: nothing polls for EPOLLOUT any more. */
	cr_assert_eq(pending_device_events(EPOLLOUT), 0);
}

/* ---- control queue ---- */

/* Sends class/cmd with data; returns the ack byte (0xee if untouched). */
static uint8_t ctrl(uint8_t class, uint8_t cmd, const void *data, size_t len)
{
	uint16_t cq = (uint16_t)(dev->num_queues - 1);
	struct seg s[3];
	uint64_t ack = alloc_buf(1);
	struct vring_used_elem *e;
	unsigned int n = 0;

	s[n] = (struct seg){alloc_buf(2), 2, false};
	host(s[n].gpa)[0] = class;
	host(s[n].gpa)[1] = cmd;
	n++;
	if (len) {
		s[n] = (struct seg){alloc_buf((uint32_t)len), (uint32_t)len, false};
		memcpy(host(s[n].gpa), data, len);
		n++;
	}
	s[n++] = (struct seg){ack, 1, true};
	*host(ack) = 0xee;
	add_chain(cq, s, n);
	dev->ops->queue_notify(dev, cq);
	e = take_used(cq);
	cr_assert_not_null(e);
	cr_assert_eq(e->len, 1);
	return *host(ack);
}

Test(net, ctrl_rx_mode)
{
	struct virtio_net_info info;
	uint8_t off = 0, on = 1, two[2] = {1, 1};

	start(0);
	virtio_net_get_info(dev, &info);
	cr_assert(info.promisc, "promiscuous by default");
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1), VIRTIO_NET_OK);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &on, 1), VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_not(info.promisc);
	cr_assert(info.allmulti);
	/* Wrong length, CTRL_RX_EXTRA commands (not offered). */
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, two, 2), VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, NULL, 0), VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST, &on, 1), VIRTIO_NET_ERR);
	cr_assert_eq(virtio_net_stats(dev)->ctrl_ok, 2);
	cr_assert_eq(virtio_net_stats(dev)->ctrl_err, 3);
}

static size_t mac_tables(uint8_t *buf, uint32_t uc, uint32_t uc_claim, uint32_t mc,
			 uint32_t mc_claim)
{
	size_t off = 0;
	uint32_t v = htole32(uc_claim);

	memcpy(buf + off, &v, 4);
	off += 4;
	for (uint32_t i = 0; i < uc; i++, off += 6)
		memcpy(buf + off, (uint8_t[6]){0x02, 0, 0, 0, 0, (uint8_t)i}, 6);
	v = htole32(mc_claim);
	memcpy(buf + off, &v, 4);
	off += 4;
	for (uint32_t i = 0; i < mc; i++, off += 6)
		memcpy(buf + off, (uint8_t[6]){0x01, 0, 0x5e, 0, 0, (uint8_t)i}, 6);
	return off;
}

Test(net, ctrl_mac_table)
{
	static uint8_t buf[8 + 100 * 6];
	struct virtio_net_info info;
	size_t len;

	start(0);
	len = mac_tables(buf, 1, 1, 2, 2);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, len),
		     VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.uc_entries, 1);
	cr_assert_eq(info.mc_entries, 2);
	/* Counts larger than the data, trailing bytes, a missing second table: ERR, kept. */
	len = mac_tables(buf, 1, 5, 0, 0);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, len),
		     VIRTIO_NET_ERR);
	len = mac_tables(buf, 0, 0, 1, 0xffffffffu);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, len),
		     VIRTIO_NET_ERR);
	len = mac_tables(buf, 0, 0, 1, 1);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, len + 1),
		     VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, 4),
		     VIRTIO_NET_ERR);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.uc_entries, 1);
	cr_assert_eq(info.mc_entries, 2);
	/* More entries than we keep: accepted, overflow flagged. */
	len = mac_tables(buf, 0, 0, 90, 90);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, len),
		     VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.mc_entries, VIRTIO_NET_MAC_TABLE_MAX);
	cr_assert(info.mc_overflow);
	cr_assert_eq(info.uc_entries, 0);
}

Test(net, ctrl_mac_addr_set)
{
	const uint8_t mac[6] = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
	uint8_t cfg[6], orig[6];

	start(0);
	dev->ops->config_read(dev, 0, orig, 6);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6),
		     VIRTIO_NET_OK);
	dev->ops->config_read(dev, 0, cfg, 6);
	cr_assert_arr_eq(cfg, mac, 6);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 5),
		     VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, 7, mac, 6), VIRTIO_NET_ERR);
	/* With CTRL_MAC_ADDR, config writes are ignored. */
	dev->ops->config_write(dev, 0, orig, 6);
	dev->ops->config_read(dev, 0, cfg, 6);
	cr_assert_arr_eq(cfg, mac, 6);
	/* Reset restores the configured MAC. */
	dev->ops->reset(dev);
	dev->ops->config_read(dev, 0, cfg, 6);
	cr_assert_arr_eq(cfg, orig, 6);
}

Test(net, ctrl_announce_ack)
{
	uint8_t cfg[2];

	start(0);
	virtio_net_announce(dev);
	cr_assert_eq(config_signals, 1);
	dev->ops->config_read(dev, 6, cfg, 2);
	cr_assert_eq(cfg[0], VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0),
		     VIRTIO_NET_OK);
	dev->ops->config_read(dev, 6, cfg, 2);
	cr_assert_eq(cfg[0], VIRTIO_NET_S_LINK_UP);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_ANNOUNCE, 1, NULL, 0), VIRTIO_NET_ERR);
}

Test(net, ctrl_unknown_short_and_statusless)
{
	uint16_t cq;
	struct seg one, noack[2];
	uint8_t x = 0;

	start(0);
	cq = (uint16_t)(dev->num_queues - 1);
	cr_assert_eq(ctrl(99, 0, NULL, 0), VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, &x, 1), VIRTIO_NET_ERR);
	/* MQ not offered with one pair. */
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, "\1\0", 2),
		     VIRTIO_NET_ERR);
	/* A one-byte message: no room for class and command. */
	one = (struct seg){alloc_buf(1), 1, false};
	{
		struct seg s[2] = {one, {alloc_buf(1), 1, true}};

		*host(s[1].gpa) = 0xee;
		add_chain(cq, s, 2);
		dev->ops->queue_notify(dev, cq);
		cr_assert_eq(take_used(cq)->len, 1);
		cr_assert_eq(*host(s[1].gpa), VIRTIO_NET_ERR);
	}
	/* No writable byte: nowhere to answer; completed with len 0 and counted. */
	noack[0] = (struct seg){alloc_buf(2), 2, false};
	noack[1] = (struct seg){alloc_buf(1), 1, false};
	add_chain(cq, noack, 2);
	dev->ops->queue_notify(dev, cq);
	cr_assert_eq(take_used(cq)->len, 0);
	cr_assert_eq(virtio_net_stats(dev)->ctrl_malformed, 1);
	cr_assert_eq(needs_resets, 0);
}

Test(net, ctrl_guest_offloads)
{
	struct net_options o = opts();
	struct virtio_net_info info;
	uint64_t v;

	create_raw(1, &o);
	/* A raw fd offers no offloads; pretend the driver got GUEST_CSUM + GUEST_TSO4. */
	cr_assert_eq(
	    bring_up(all_features() | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4)), 0);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.guest_offloads, F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4));
	v = htole64(F(VIRTIO_NET_F_GUEST_CSUM));
	cr_assert_eq(
	    ctrl(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &v, 8),
	    VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.guest_offloads, F(VIRTIO_NET_F_GUEST_CSUM));
	/* Not negotiated, or not an offload bit at all. */
	v = htole64(F(VIRTIO_NET_F_GUEST_TSO6));
	cr_assert_eq(
	    ctrl(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &v, 8),
	    VIRTIO_NET_ERR);
	v = htole64(F(VIRTIO_NET_F_MAC));
	cr_assert_eq(
	    ctrl(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &v, 8),
	    VIRTIO_NET_ERR);
	cr_assert_eq(
	    ctrl(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &v, 4),
	    VIRTIO_NET_ERR);
	v = 0;
	cr_assert_eq(
	    ctrl(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &v, 8),
	    VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.guest_offloads, 0);
}

/* ---- multiqueue ---- */

Test(net, mq_pairs_in_and_out_of_range)
{
	struct net_options o = opts();
	struct virtio_net_info info;
	uint8_t data[40], cfg[2];
	uint16_t k;

	create_raw(2, &o);
	cr_assert_eq(dev->num_queues, 5);
	cr_assert(dev->host_features & F(VIRTIO_NET_F_MQ));
	dev->ops->config_read(dev, 8, cfg, 2);
	cr_assert_eq(cfg[0], 2);
	cr_assert_eq(bring_up(all_features()), 0);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.curr_pairs, 1);

	/* Pair 1 has buffers but is not in use yet: its fd is not read. */
	post_rx(2, 2048, NULL);
	fill(data, sizeof(data), 12);
	send_frame(peer[1], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 2);
	pump();
	cr_assert_eq(used_idx(2), 0);

	k = htole16(0);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2),
		     VIRTIO_NET_ERR);
	k = htole16(3);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2),
		     VIRTIO_NET_ERR);
	k = htole16(2);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 1),
		     VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2),
		     VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.curr_pairs, 2);
	pump();
	cr_assert_eq(used_idx(2), 1, "pair 1 receives once enabled");
	cr_assert_eq(signals[2], 1);
}

Test(net, mq_not_negotiated_moves_the_control_queue)
{
	struct net_options o = opts();
	struct seg s[2];
	uint8_t on = 0;

	create_raw(2, &o);
	/* Without MQ the control queue is queue 2 (§5.1.2), whatever max_virtqueue_pairs is. */
	cr_assert_eq(bring_up(all_features() & ~F(VIRTIO_NET_F_MQ)), 0);
	s[0] = (struct seg){alloc_buf(3), 3, false};
	memcpy(host(s[0].gpa), (uint8_t[3]){VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, on}, 3);
	s[1] = (struct seg){alloc_buf(1), 1, true};
	add_chain(2, s, 2);
	dev->ops->queue_notify(dev, 2);
	cr_assert_eq(used_idx(2), 1);
	cr_assert_eq(*host(s[1].gpa), VIRTIO_NET_OK);
}

/* ---- reset ---- */

Test(net, reset_stops_polling_and_forgets_pending_frames)
{
	static uint8_t data[2500];

	start(0);
	post_rx(0, 1000, NULL);
	fill(data, sizeof(data), 13);
	send_frame(peer[0], HDR12, data, sizeof(data));
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_eq(used_idx(0), 0);
	dev->ops->reset(dev);
	send_frame(peer[0], HDR12, data, 100);
	cr_assert_eq(pending_device_events(~0U), 0);
	/* A fresh driver gets the next frame into fresh buffers, whole. */
	cr_assert_eq(bring_up(all_features()), 0);
	post_rx(0, 4096, NULL);
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_eq(used_idx(0), 1);
	cr_assert_eq(take_used(0)->len, 112);
}

/* ---- a real tap, when this host lets us make one ---- */

Test(net, real_multiqueue_tap)
{
	struct net_options o = opts();
	struct kerr err = {.msg = ""};
	struct virtio_net_info info;
	uint16_t k = htole16(2);

	o.tap_name = "kntest%d";
	o.queues = 2;
	if (virtio_net_create(&dev, &o, &gm, &loop, &err) < 0) {
		cr_assert(strstr(err.msg, "CAP_NET_ADMIN") || strstr(err.msg, "modprobe tun") ||
			      strstr(err.msg, "/dev/net/tun"),
			  "%s", err.msg);
		cr_skip_test("no tap here: %s", err.msg);
	}
	dev->transport = &fake_transport;
	cr_assert(strncmp(virtio_net_ifname(dev), "kntest", 6) == 0);
	/* A vnet-header tap takes partial checksums and TSO from us. */
	cr_assert(dev->host_features & F(VIRTIO_NET_F_CSUM));
	cr_assert(dev->host_features & F(VIRTIO_NET_F_HOST_TSO4));
	cr_assert(dev->host_features & F(VIRTIO_NET_F_MQ));
	cr_assert_eq(virtio_net_check_features(all_features(), NULL), 0);
	cr_assert_eq(bring_up(all_features()), 0);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2),
		     VIRTIO_NET_OK);
	k = htole16(1);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2),
		     VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.curr_pairs, 1);
	cr_assert_eq(info.hdr_len, 12);
}

/* ---- vhost argument builders (no /dev/vhost-net needed) ---- */

Test(net, vhost_memory_table_from_regions)
{
	struct guest_mem two = {
	    .regions = {{0, 0xc0000000, (uint8_t *)0x7f0000000000},
			{0x100000000ULL, 0x40000000, (uint8_t *)0x7f1000000000}},
	    .nr_regions = 2,
	};
	struct vhost_memory *m = net_vhost_mem_table(&two);

	cr_assert_not_null(m);
	cr_assert_eq(m->nregions, 2);
	cr_assert_eq(m->regions[0].guest_phys_addr, 0);
	cr_assert_eq(m->regions[0].memory_size, 0xc0000000);
	cr_assert_eq(m->regions[0].userspace_addr, 0x7f0000000000ULL);
	cr_assert_eq(m->regions[1].guest_phys_addr, 0x100000000ULL);
	cr_assert_eq(m->regions[1].memory_size, 0x40000000);
	cr_assert_eq(m->regions[1].userspace_addr, 0x7f1000000000ULL);
	cr_assert_eq(m->regions[1].flags_padding, 0);
	free(m);
	two.nr_regions = 0;
	cr_assert_null(net_vhost_mem_table(&two));
}

Test(net, vhost_vring_addr_and_features)
{
	struct virtqueue vq = {0};
	struct vhost_vring_addr a;
	uint64_t vf = F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) |
		      F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_RING_F_INDIRECT_DESC) |
		      F(VHOST_NET_F_VIRTIO_NET_HDR) | F(VIRTIO_F_ANY_LAYOUT);
	uint64_t g = F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) |
		     F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_CTRL_VQ);

	cr_assert_eq(virtq_setup(&vq, &gm, 256, desc_gpa(0), avail_gpa(0), used_gpa(0), 0, NULL),
		     0);
	net_vhost_vring_addr(&a, 1, &vq);
	cr_assert_eq(a.index, 1);
	cr_assert_eq(a.flags, 0);
	cr_assert_eq(a.desc_user_addr, (uint64_t)(uintptr_t)host(desc_gpa(0)));
	cr_assert_eq(a.avail_user_addr, (uint64_t)(uintptr_t)host(avail_gpa(0)));
	cr_assert_eq(a.used_user_addr, (uint64_t)(uintptr_t)host(used_gpa(0)));
	cr_assert_eq(a.log_guest_addr, 0);
	/* Only what both know, and never VHOST_NET_F_VIRTIO_NET_HDR (the tap has the header). */
	cr_assert_eq(net_vhost_features(g | F(VHOST_NET_F_VIRTIO_NET_HDR), vf),
		     F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) |
			 F(VIRTIO_RING_F_EVENT_IDX));
}

Test(net, tap_offload_flags_from_features)
{
	cr_assert_eq(net_tap_offload_flags(0), 0);
	cr_assert_eq(net_tap_offload_flags(F(VIRTIO_NET_F_GUEST_TSO4)), 0,
		     "TSO without checksum offload means nothing to the tap");
	cr_assert_eq(net_tap_offload_flags(F(VIRTIO_NET_F_GUEST_CSUM)), TUN_F_CSUM);
	cr_assert_eq(net_tap_offload_flags(F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) |
					   F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN) |
					   F(VIRTIO_NET_F_GUEST_UFO)),
		     TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO);
}

Test(net, vhost_on_without_vhost_net_is_an_error_auto_falls_back)
{
	struct net_options o = opts();
	struct kerr err = {.msg = ""};

	if (access("/dev/vhost-net", F_OK) == 0)
		cr_skip_test("/dev/vhost-net exists here");
	o.tap_name = "kntest%d";
	o.vhost = NET_VHOST_ON;
	if (virtio_net_create(&dev, &o, &gm, &loop, &err) < 0 && !strstr(err.msg, "vhost"))
		cr_skip_test("no tap here: %s", err.msg);
	cr_assert_null(dev);
	cr_assert(strstr(err.msg, "vhost=on but /dev/vhost-net cannot be opened: ") &&
		      strstr(err.msg, "(modprobe vhost_net, or use vhost=off)"),
		  "%s", err.msg);
	o.vhost = NET_VHOST_AUTO;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), 0, "%s", err.msg);
	cr_assert(strstr(virtio_net_backend(dev), "tap (vhost-net unavailable: "), "%s",
		  virtio_net_backend(dev));
}

/* ---- per-queue state sized from the negotiated queue size ---- */

/* RX queue 0's rings for any size up to VIRTQ_MAX_SIZE, away from the other queues'. */
#define BIG_DESC 0x800000ULL
#define BIG_AVAIL (BIG_DESC + 16 * VIRTQ_MAX_SIZE)
#define BIG_USED (BIG_AVAIL + 0x1000)

/*
 * Brings the device up with RX queue 0 set up at size entries (the transport would cap it at
 * the device maximum; the device struct is written directly here), posts one header-sized
 * buffer and size - 1 one-byte buffers, and sends frames of payload bytes, checking the
 * first fills the whole queue with nothing written out of bounds.
 */
static void rx_many_tiny_buffers(uint16_t size)
{
	struct vring_desc *desc = (struct vring_desc *)host(BIG_DESC);
	struct vring_avail *av = (struct vring_avail *)host(BIG_AVAIL);
	struct vring_used *us = (struct vring_used *)host(BIG_USED);
	static uint8_t data[VIRTQ_MAX_SIZE];
	uint64_t first = alloc_buf(HDR12), f = all_features();
	uint64_t frames = virtio_net_stats(dev)->rx_frames;
	uint64_t no_room = virtio_net_stats(dev)->rx_no_room;
	uint32_t payload = size - 1u;

	cr_assert(f & F(VIRTIO_NET_F_MRG_RXBUF));
	dev->guest_features = f;
	memset(host(RING_BASE), 0, (size_t)dev->num_queues * 0x4000);
	memset(host(BIG_DESC), 0, BIG_USED + 8 * VIRTQ_MAX_SIZE + 8 - BIG_DESC);
	memset(drv, 0, sizeof(drv));
	for (uint16_t q = 0; q < dev->num_queues; q++) {
		virtq_reset(&dev->vqs[q]);
		if (q == 0)
			cr_assert_eq(virtq_setup(&dev->vqs[q], &gm, size, BIG_DESC, BIG_AVAIL,
						 BIG_USED, f, NULL),
				     0);
		else
			cr_assert_eq(virtq_setup(&dev->vqs[q], &gm, QSIZE, desc_gpa(q),
						 avail_gpa(q), used_gpa(q), f, NULL),
				     0);
	}
	cr_assert_eq(dev->ops->activate(dev), 0);

	for (uint16_t i = 0; i < size; i++) {
		desc[i].addr = i == 0 ? first : alloc_buf(1);
		desc[i].len = i == 0 ? HDR12 : 1;
		desc[i].flags = VRING_DESC_F_WRITE;
		av->ring[i] = i;
	}
	__atomic_store_n(&av->idx, size, __ATOMIC_RELEASE);

	/* Exactly what the queue holds: every buffer used, once, as one frame. */
	fill(data, payload, 7);
	send_frame(peer[0], HDR12, data, payload);
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_eq(__atomic_load_n(&us->idx, __ATOMIC_ACQUIRE), size);
	cr_assert_eq(num_buffers_at(first), size);
	for (uint16_t i = 0; i < size; i++) {
		cr_assert_eq(us->ring[i].id, i);
		cr_assert_eq(us->ring[i].len, i == 0 ? HDR12 : 1);
		if (i)
			cr_assert_eq(*host(desc[i].addr), data[i - 1]);
	}
	cr_assert_eq(virtio_net_stats(dev)->rx_frames, frames + 1);

	/* One byte more than the queue holds: all buffers come back empty, nothing overflows. */
	__atomic_store_n(&av->idx, (uint16_t)(2 * size), __ATOMIC_RELEASE);
	send_frame(peer[0], HDR12, data, payload + 1);
	dev->ops->queue_notify(dev, 0);
	pump();
	cr_assert_eq(__atomic_load_n(&us->idx, __ATOMIC_ACQUIRE), (uint16_t)(2 * size));
	cr_assert_eq(virtio_net_stats(dev)->rx_no_room, no_room + 1);
	cr_assert_eq(virtio_net_stats(dev)->rx_frames, frames + 1);
	cr_assert_eq(needs_resets, 0);
}

static void create_one(void)
{
	struct net_options o = opts();

	create_raw(1, &o);
}

Test(net, rx_mergeable_small_queue_many_tiny_buffers)
{
	create_one();
	rx_many_tiny_buffers(16);
}

Test(net, rx_mergeable_max_size_queue_many_tiny_buffers)
{
	create_one();
	rx_many_tiny_buffers(VIRTIO_NET_QUEUE_SIZE);
}

/* Larger than the device's maximum: what the transport let through before issue 7. */
Test(net, rx_mergeable_oversized_queue_many_tiny_buffers)
{
	create_one();
	rx_many_tiny_buffers(VIRTQ_MAX_SIZE);
}

/* Reset, then a second activation with other sizes: the state follows each new size. */
Test(net, rx_queue_size_follows_each_activation)
{
	create_one();
	rx_many_tiny_buffers(16);
	dev->ops->reset(dev);
	rx_many_tiny_buffers(VIRTQ_MAX_SIZE);
	dev->ops->reset(dev);
	rx_many_tiny_buffers(8);
}
