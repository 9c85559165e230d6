/*
 * virtio-console against a hand-written driver: rings in a fake 16 MiB guest RAM, a fake
 * transport that records interrupts, pipes for the terminal and real unix sockets for the
 * named ports. The event loop is not started: tests pump its epoll fd themselves, which also
 * shows which fds the device asks to be woken for.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "virtio/console.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"

#define MiB (1ULL << 20)
#define RAM_SIZE (16 * MiB)
#define QS 256
#define NQ 8 /* port 0, control, two named ports */
#define RING_GPA(q) (0x10000ULL + (q)*0x4000ULL)
#define BUF_GPA(q) (1 * MiB + (q)*MiB)

static struct guest_mem gm;
static struct event_loop el;
static struct virtio_dev *dev;
static int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
static char tmpdir[64];
static char paths[2][128];
static unsigned int signals[VIRTIO_MAX_QUEUES], resets;

/* The fake driver's view of one queue. */
struct fq {
	uint16_t avail_idx, used_seen, next_desc;
	uint64_t buf_next;
	uint64_t head_buf[QS]; /* gpa of the first buffer of the chain at each head */
};
static struct fq fqs[NQ];

static uint8_t *host(uint64_t gpa)
{
	return gm.regions[0].host + gpa;
}

static struct vring_desc *desc(unsigned int q)
{
	return (struct vring_desc *)host(RING_GPA(q));
}

static struct vring_avail *avail(unsigned int q)
{
	return (struct vring_avail *)host(RING_GPA(q) + 0x1000);
}

static struct vring_used *used(unsigned int q)
{
	return (struct vring_used *)host(RING_GPA(q) + 0x2000);
}

static void t_signal(struct virtio_dev *d, uint16_t q)
{
	(void)d;
	signals[q]++;
}

static void t_config(struct virtio_dev *d)
{
	(void)d;
}

static void t_needs_reset(struct virtio_dev *d)
{
	(void)d;
	resets++;
}

static const struct virtio_transport_ops fake_transport = {
    .signal_queue = t_signal,
    .signal_config = t_config,
    .needs_reset = t_needs_reset,
};

static uint64_t alloc_buf(unsigned int q, uint32_t len)
{
	struct fq *f = &fqs[q];
	uint64_t gpa;

	if (f->buf_next + len > BUF_GPA(q) + MiB)
		f->buf_next = BUF_GPA(q);
	gpa = f->buf_next;
	f->buf_next += (len + 15) & ~15u;
	return gpa;
}

/* A chain of nsegs descriptors over len bytes, all readable (data != NULL) or all writable. */
static uint16_t post(unsigned int q, const void *data, uint32_t len, unsigned int nsegs)
{
	struct fq *f = &fqs[q];
	uint16_t head = f->next_desc;
	uint32_t off = 0;

	for (unsigned int i = 0; i < nsegs; i++) {
		uint16_t di = f->next_desc;
		uint32_t seg = i == nsegs - 1 ? len - off : len / nsegs;
		uint64_t gpa = alloc_buf(q, seg);
		struct vring_desc *dd = &desc(q)[di];

		if (data)
			memcpy(host(gpa), (const uint8_t *)data + off, seg);
		else
			memset(host(gpa), 0xee, seg);
		if (i == 0)
			f->head_buf[head] = gpa;
		f->next_desc = (f->next_desc + 1) % QS;
		dd->addr = gpa;
		dd->len = seg;
		dd->flags =
		    (data ? 0 : VRING_DESC_F_WRITE) | (i < nsegs - 1 ? VRING_DESC_F_NEXT : 0);
		dd->next = f->next_desc;
		off += seg;
	}
	avail(q)->ring[f->avail_idx % QS] = head;
	f->avail_idx++;
	__atomic_store_n(&avail(q)->idx, f->avail_idx, __ATOMIC_RELEASE);
	return head;
}

static uint16_t post_rx(unsigned int q, uint32_t len)
{
	return post(q, NULL, len, 1);
}

/* The next used entry: true with its buffer and length, false if there is none. */
static bool take_used(unsigned int q, uint8_t **buf, uint32_t *len)
{
	struct fq *f = &fqs[q];
	struct vring_used_elem *e;

	if (__atomic_load_n(&used(q)->idx, __ATOMIC_ACQUIRE) == f->used_seen)
		return false;
	e = &used(q)->ring[f->used_seen % QS];
	f->used_seen++;
	cr_assert_lt(e->id, QS);
	if (buf)
		*buf = host(f->head_buf[e->id]);
	if (len)
		*len = e->len;
	return true;
}

static unsigned int count_used(unsigned int q)
{
	unsigned int n = 0;

	while (take_used(q, NULL, NULL))
		n++;
	return n;
}

static void kick(unsigned int q)
{
	dev->ops->queue_notify(dev, (uint16_t)q);
}

static int pump(int timeout_ms)
{
	struct epoll_event evs[16];
	int n = epoll_wait(el.epfd, evs, 16, timeout_ms);

	for (int i = 0; i < n; i++) {
		struct event_handler *h = evs[i].data.ptr;

		if (h)
			h->fn(h->opaque, evs[i].events);
	}
	return n;
}

static void setup_queues(void)
{
	memset(host(RING_GPA(0)), 0, RING_GPA(NQ) - RING_GPA(0));
	memset(fqs, 0, sizeof(fqs));
	for (unsigned int q = 0; q < dev->num_queues; q++) {
		fqs[q].buf_next = BUF_GPA(q);
		virtq_reset(&dev->vqs[q]);
		cr_assert_eq(virtq_setup(&dev->vqs[q], &gm, QS, RING_GPA(q), RING_GPA(q) + 0x1000,
					 RING_GPA(q) + 0x2000, dev->guest_features, NULL),
			     0);
	}
}

/* Creates the device with nr named ports and brings it to DRIVER_OK. */
static void start_out(unsigned int nr, int out_fd)
{
	const struct console_port_options opts[2] = {
	    {.name = "org.kestrel.one", .socket_path = paths[0]},
	    {.name = "two", .socket_path = paths[1]},
	};
	struct kerr err = {{0}};

	cr_assert_eq(virtio_console_create(&dev, in_pipe[0], out_fd, opts, nr, &gm, &el, &err), 0,
		     "%s", err.msg);
	cr_assert_eq(dev->num_queues, 4 + 2 * nr);
	cr_assert_eq(dev->queue_max_size, 256);
	cr_assert(dev->host_features & (1ULL << VIRTIO_CONSOLE_F_MULTIPORT));
	cr_assert(dev->host_features & (1ULL << VIRTIO_RING_F_EVENT_IDX));
	dev->transport = &fake_transport;
	dev->guest_features = dev->host_features | (1ULL << VIRTIO_F_VERSION_1);
	setup_queues();
	cr_assert_eq(dev->ops->activate(dev), 0);
}

static void start(unsigned int nr)
{
	start_out(nr, out_pipe[1]);
}

static void suite_init(void)
{
	struct guest_mem_region layout = {.gpa = 0, .size = RAM_SIZE};

	cr_assert_eq(guest_mem_map(&gm, &layout, 1, NULL), 0);
	cr_assert_eq(event_loop_init(&el, NULL), 0);
	cr_assert_eq(pipe2(in_pipe, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out_pipe, O_CLOEXEC | O_NONBLOCK), 0);
	strcpy(tmpdir, "/tmp/kestrel-console-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(paths[0], sizeof(paths[0]), "%s/one.sock", tmpdir);
	snprintf(paths[1], sizeof(paths[1]), "%s/two.sock", tmpdir);
	memset(signals, 0, sizeof(signals));
	resets = 0;
	dev = NULL;
}

static void suite_fini(void)
{
	virtio_console_destroy(dev);
	event_loop_destroy(&el);
	close(in_pipe[0]);
	close(in_pipe[1]);
	close(out_pipe[0]);
	close(out_pipe[1]);
	unlink(paths[0]);
	unlink(paths[1]);
	rmdir(tmpdir);
	guest_mem_unmap(&gm);
}

TestSuite(virtio_console, .init = suite_init, .fini = suite_fini);

/* Control protocol helpers */

static void guest_ctrl(uint32_t id, uint16_t event, uint16_t value)
{
	struct virtio_console_control m = {.id = id, .event = event, .value = value};

	post(3, &m, sizeof(m), 1);
	kick(3);
	cr_assert(take_used(3, NULL, NULL), "control tx chain not completed");
}

static void post_ctrl_rx(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		post_rx(2, 4096);
}

/* The next message the device sent on control rx; returns its extra bytes (PORT_NAME). */
static uint32_t expect_ctrl(uint32_t id, uint16_t event, uint16_t value, uint8_t **extra)
{
	struct virtio_console_control m;
	uint8_t *buf;
	uint32_t len;

	cr_assert(take_used(2, &buf, &len), "no control message (want event %u id %u)", event, id);
	cr_assert_geq(len, sizeof(m));
	memcpy(&m, buf, sizeof(m));
	cr_assert_eq(m.event, event, "event %u, want %u", m.event, event);
	cr_assert_eq(m.id, id, "id %u, want %u (event %u)", m.id, id, event);
	cr_assert_eq(m.value, value, "value %u, want %u (event %u)", m.value, value, event);
	if (extra)
		*extra = buf + sizeof(m);
	return len - (uint32_t)sizeof(m);
}

static void expect_no_ctrl(void)
{
	cr_assert_not(take_used(2, NULL, NULL), "unexpected control message");
}

/* DEVICE_READY and PORT_READY for every port, checking the device's answers. */
static void handshake(unsigned int nr)
{
	post_ctrl_rx(32);
	guest_ctrl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	for (unsigned int i = 0; i <= nr; i++)
		expect_ctrl(i, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
	expect_no_ctrl();
	guest_ctrl(0, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(0, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL);
	expect_ctrl(0, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	expect_no_ctrl();
	guest_ctrl(0, VIRTIO_CONSOLE_PORT_OPEN, 1); /* Linux: hvc0 is open from the start */
}

static void ready_port(uint32_t id, const char *name)
{
	uint8_t *extra;

	guest_ctrl(id, VIRTIO_CONSOLE_PORT_READY, 1);
	cr_assert_eq(expect_ctrl(id, VIRTIO_CONSOLE_PORT_NAME, 0, &extra), strlen(name));
	cr_assert_eq(memcmp(extra, name, strlen(name)), 0);
}

static int connect_client(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	strcpy(sa.sun_path, path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect %s: %s", path,
		     strerror(errno));
	cr_assert_gt(pump(1000), 0, "the device did not see the connection");
	return fd;
}

/* A port-1 client connected and the port open on both sides. */
static int open_port1(void)
{
	int fd;

	start(1);
	handshake(1);
	ready_port(1, "org.kestrel.one");
	expect_no_ctrl(); /* no client yet: no PORT_OPEN */
	fd = connect_client(paths[0]);
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	guest_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	return fd;
}

static struct virtio_console_stats stats(void)
{
	struct virtio_console_stats s;

	virtio_console_get_stats(dev, &s);
	return s;
}

static void pattern(uint8_t *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + seed + i / 251);
}

/* Tests */

Test(virtio_console, config_space)
{
	uint8_t cfg[12];
	uint32_t max;

	start(2);
	dev->ops->config_read(dev, 0, cfg, sizeof(cfg));
	memcpy(&max, cfg + 4, 4);
	cr_assert_eq(max, 3);
}

Test(virtio_console, handshake_adds_ports_and_names_them)
{
	start(2);
	handshake(2);
	ready_port(1, "org.kestrel.one");
	ready_port(2, "two");
	expect_no_ctrl();
	cr_assert_gt(signals[2], 0, "no interrupt for control rx");
	cr_assert_eq(stats().ctrl_malformed, 0);
	/* A repeated DEVICE_READY adds nothing. */
	guest_ctrl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_no_ctrl();
}

Test(virtio_console, control_messages_wait_for_buffers_in_order)
{
	start(2);
	guest_ctrl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_no_ctrl();
	post_ctrl_rx(1);
	kick(2);
	expect_ctrl(0, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
	expect_no_ctrl();
	post_ctrl_rx(4);
	kick(2);
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
	expect_ctrl(2, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
	expect_no_ctrl();
}

Test(virtio_console, port0_output_reaches_out_fd)
{
	char buf[64] = {0};
	const char msg[] = "hello, world\n";
	uint32_t len = 99;

	start(0);
	post(1, msg, sizeof(msg) - 1, 3);
	kick(1);
	cr_assert(take_used(1, NULL, &len));
	cr_assert_eq(len, 0);
	cr_assert_eq(signals[1], 1);
	cr_assert_eq(read(out_pipe[0], buf, sizeof(buf)), (ssize_t)sizeof(msg) - 1);
	cr_assert_str_eq(buf, msg);
	cr_assert_eq(stats().tx_bytes, sizeof(msg) - 1);
}

Test(virtio_console, port0_output_resumes_when_out_fd_drains)
{
	static uint8_t data[96 * 1024], got[96 * 1024];
	size_t have = 0;

	/* 96 KiB into a 64 KiB non-blocking pipe: the rest waits for EPOLLOUT. */
	start(0);
	pattern(data, sizeof(data), 5);
	for (unsigned int i = 0; i < 6; i++)
		post(1, data + i * 16384, 16384, 2);
	kick(1);
	cr_assert_lt(count_used(1), 6);
	for (int tries = 0; have < sizeof(data) && tries < 200; tries++) {
		ssize_t n = read(out_pipe[0], got + have, sizeof(got) - have);

		if (n > 0)
			have += (size_t)n;
		pump(10);
	}
	cr_assert_eq(have, sizeof(data));
	cr_assert_eq(memcmp(got, data, sizeof(data)), 0);
	cr_assert_eq(fqs[1].used_seen + count_used(1), 6);
}

Test(virtio_console, input_waits_for_open_port_and_buffers)
{
	uint8_t *buf;
	uint32_t len;

	start(0);
	virtio_console_input(dev, (const uint8_t *)"abc", 3);
	post_rx(0, 2);
	kick(0);
	cr_assert_not(take_used(0, NULL, NULL), "delivered before the guest opened the port");
	handshake(0); /* the guest opens port 0: the buffer posted earlier gets "ab" */
	cr_assert(take_used(0, &buf, &len));
	cr_assert_eq(len, 2);
	cr_assert_eq(memcmp(buf, "ab", 2), 0);
	cr_assert_not(take_used(0, NULL, NULL));
	post_rx(0, 16);
	kick(0);
	cr_assert(take_used(0, &buf, &len));
	cr_assert_eq(len, 1);
	cr_assert_eq(buf[0], 'c');

	/* From the input fd too, once a buffer is there. */
	cr_assert_eq(write(in_pipe[1], "xyz", 3), 3);
	cr_assert_gt(pump(1000), 0);
	cr_assert_not(take_used(0, NULL, NULL));
	post_rx(0, 16);
	kick(0);
	cr_assert(take_used(0, &buf, &len));
	cr_assert_eq(len, 3);
	cr_assert_eq(memcmp(buf, "xyz", 3), 0);
	cr_assert_eq(stats().input_dropped, 0);
	cr_assert_eq(stats().rx_bytes, 6);
}

Test(virtio_console, input_beyond_buffer_is_dropped_and_counted)
{
	static uint8_t big[VIRTIO_CONSOLE_INPUT_BUF + 100];
	uint32_t total = 0, len;
	uint8_t *buf;

	start(0);
	pattern(big, sizeof(big), 1);
	virtio_console_input(dev, big, sizeof(big));
	cr_assert_eq(stats().input_dropped, 100);
	handshake(0);
	for (unsigned int i = 0; i < 20; i++)
		post_rx(0, 4096);
	kick(0);
	while (take_used(0, &buf, &len)) {
		cr_assert_eq(memcmp(buf, big + total, len), 0);
		total += len;
	}
	cr_assert_eq(total, VIRTIO_CONSOLE_INPUT_BUF);
}

Test(virtio_console, named_port_data_both_ways)
{
	static uint8_t in[5000], out[6000], got[6000];
	size_t have = 0;
	uint32_t len;
	uint8_t *buf;
	int fd = open_port1();

	/* client -> guest */
	pattern(in, sizeof(in), 3);
	cr_assert_eq(write(fd, in, sizeof(in)), (ssize_t)sizeof(in));
	for (unsigned int i = 0; i < 8; i++)
		post_rx(4, 1024);
	kick(4);
	for (int tries = 0; have < sizeof(in) && tries < 100; tries++) {
		while (take_used(4, &buf, &len)) {
			cr_assert_leq(have + len, sizeof(in));
			memcpy(got + have, buf, len);
			have += len;
		}
		if (have < sizeof(in))
			pump(10);
	}
	cr_assert_eq(have, sizeof(in));
	cr_assert_eq(memcmp(got, in, sizeof(in)), 0);
	cr_assert_gt(signals[4], 0);

	/* guest -> client, chains of several segments */
	pattern(out, sizeof(out), 9);
	post(5, out, 1000, 2);
	post(5, out + 1000, 3000, 3);
	post(5, out + 4000, 2000, 1);
	kick(5);
	cr_assert_eq(count_used(5), 3);
	have = 0;
	while (have < sizeof(out)) {
		ssize_t n = read(fd, got + have, sizeof(out) - have);

		cr_assert_gt(n, 0);
		have += (size_t)n;
	}
	cr_assert_eq(memcmp(got, out, sizeof(out)), 0);
	cr_assert_eq(stats().tx_bytes, sizeof(out));
	cr_assert_eq(stats().rx_bytes, sizeof(in));
	close(fd);
}

Test(virtio_console, client_not_polled_without_guest_buffers)
{
	uint8_t *buf;
	uint32_t len;
	int fd = open_port1();

	cr_assert_eq(write(fd, "ping", 4), 4);
	/* Data is waiting but the guest has nowhere to put it: nothing may wake us. */
	cr_assert_eq(pump(50), 0, "the device polls a client it cannot read");
	post_rx(4, 64);
	kick(4);
	cr_assert(take_used(4, &buf, &len));
	cr_assert_eq(len, 4);
	cr_assert_eq(memcmp(buf, "ping", 4), 0);
	cr_assert_eq(pump(50), 0);
	close(fd);
}

Test(virtio_console, guest_closed_port_holds_client_data)
{
	uint8_t *buf;
	uint32_t len;
	int fd = open_port1();

	guest_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	cr_assert_eq(write(fd, "held", 4), 4);
	post_rx(4, 64);
	kick(4);
	cr_assert_eq(pump(50), 0);
	cr_assert_not(take_used(4, NULL, NULL));
	guest_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	cr_assert(take_used(4, &buf, &len));
	cr_assert_eq(len, 4);
	cr_assert_eq(memcmp(buf, "held", 4), 0);
	close(fd);
}

Test(virtio_console, full_client_socket_stops_and_resumes_tx)
{
	enum { CHAINS = 48, CHUNK = 16384 }; /* within the queue's 1 MiB of buffers */
	static uint8_t out[CHAINS * CHUNK], got[CHAINS * CHUNK];
	size_t have = 0;
	int fd = open_port1();
	unsigned int done;

	pattern(out, sizeof(out), 11);
	for (unsigned int i = 0; i < CHAINS; i++)
		post(5, out + i * CHUNK, CHUNK, 1 + i % 3);
	kick(5);
	done = count_used(5);
	cr_assert_lt(done, CHAINS, "it all fit into the socket: the test proves nothing");
	cr_assert_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	for (int tries = 0; have < sizeof(out) && tries < 1000; tries++) {
		ssize_t n = read(fd, got + have, sizeof(got) - have);

		if (n > 0)
			have += (size_t)n;
		pump(5);
	}
	cr_assert_eq(have, sizeof(out));
	cr_assert_eq(memcmp(got, out, sizeof(out)), 0);
	cr_assert_eq(done + count_used(5), CHAINS);
	cr_assert_eq(stats().output_discarded, 0);
	close(fd);
}

Test(virtio_console, guest_output_without_client_is_discarded)
{
	start(1);
	handshake(1);
	ready_port(1, "org.kestrel.one");
	post(5, "lost", 4, 1);
	kick(5);
	cr_assert_eq(count_used(5), 1);
	cr_assert_eq(stats().output_discarded, 4);
}

Test(virtio_console, client_disconnect_and_second_client)
{
	char c;
	int fd = open_port1(), fd2;

	/* A second client is closed at once. */
	fd2 = connect_client(paths[0]);
	cr_assert_eq(read(fd2, &c, 1), 0);
	close(fd2);
	cr_assert_eq(stats().clients_rejected, 1);
	expect_no_ctrl();

	close(fd);
	cr_assert_gt(pump(1000), 0);
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
	cr_assert_eq(pump(50), 0, "a closed client is still polled");

	/* Back to listening: the next client is the port's. */
	fd = connect_client(paths[0]);
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	cr_assert_eq(write(fd, "x", 1), 1);
	post_rx(4, 8);
	kick(4);
	cr_assert(take_used(4, NULL, NULL));
	close(fd);
}

Test(virtio_console, client_data_is_delivered_before_its_eof)
{
	uint8_t *buf;
	uint32_t len;
	int fd = open_port1();

	cr_assert_eq(write(fd, "bye", 3), 3);
	close(fd);
	pump(50);
	expect_no_ctrl(); /* the guest has not read "bye" yet */
	cr_assert_eq(pump(50), 0, "busy-waiting on a hung-up client");
	post_rx(4, 64);
	kick(4);
	cr_assert(take_used(4, &buf, &len));
	cr_assert_eq(len, 3);
	cr_assert_eq(memcmp(buf, "bye", 3), 0);
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
}

Test(virtio_console, malformed_control_messages_are_counted)
{
	struct virtio_console_control m = {.id = 0, .event = VIRTIO_CONSOLE_DEVICE_READY};

	start(1);
	post_ctrl_rx(8);
	post(3, &m, 4, 1); /* short */
	kick(3);
	guest_ctrl(0, 99, 1);				 /* unknown event */
	guest_ctrl(77, VIRTIO_CONSOLE_PORT_READY, 1);	 /* no such port */
	guest_ctrl(1, VIRTIO_CONSOLE_PORT_ADD, 1);	 /* device-to-driver only */
	guest_ctrl(0xffff, VIRTIO_CONSOLE_PORT_OPEN, 1); /* no such port */
	cr_assert_eq(fqs[3].used_seen + count_used(3), 5, "every chain is completed");
	cr_assert_eq(stats().ctrl_malformed, 5);
	cr_assert_eq(resets, 0);
	expect_no_ctrl();
	/* Still works. */
	guest_ctrl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_ctrl(0, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
}

Test(virtio_console, broken_queue_asks_for_reset)
{
	start(0);
	avail(1)->ring[0] = QS + 3; /* head out of range */
	__atomic_store_n(&avail(1)->idx, 1, __ATOMIC_RELEASE);
	kick(1);
	cr_assert_eq(resets, 1);
	kick(1);
	cr_assert_eq(resets, 1, "a broken device keeps working on its queues");
}

Test(virtio_console, reset_drops_queued_control_and_keeps_client)
{
	int fd;

	start(1);
	fd = connect_client(paths[0]);
	/* No control rx buffers: the PORT_ADDs wait in the device. */
	guest_ctrl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	dev->ops->reset(dev);
	setup_queues();
	cr_assert_eq(dev->ops->activate(dev), 0);
	post_ctrl_rx(4);
	kick(2);
	expect_no_ctrl();

	/* The next driver finds the client still connected. */
	handshake(1);
	guest_ctrl(1, VIRTIO_CONSOLE_PORT_READY, 1);
	cr_assert_eq(expect_ctrl(1, VIRTIO_CONSOLE_PORT_NAME, 0, NULL), strlen("org.kestrel.one"));
	expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	close(fd);
}

Test(virtio_console, bad_socket_paths_fail_clearly)
{
	struct console_port_options o = {.name = "p", .socket_path = "/nonexistent-kestrel/x.sock"};
	struct kerr err = {{0}};
	struct virtio_dev *d = NULL;
	struct stat st;
	int fd;

	cr_assert_eq(virtio_console_create(&d, -1, -1, &o, 1, &gm, &el, &err), -1);
	cr_assert_not_null(strstr(err.msg, "/nonexistent-kestrel/x.sock"), "%s", err.msg);
	cr_assert_null(strchr(err.msg, '\n'));

	/* A regular file is not ours to replace. */
	fd = open(paths[0], O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	o.socket_path = paths[0];
	cr_assert_eq(virtio_console_create(&d, -1, -1, &o, 1, &gm, &el, &err), -1);
	cr_assert_not_null(strstr(err.msg, "not a socket"), "%s", err.msg);
	cr_assert_eq(stat(paths[0], &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	unlink(paths[0]);

	/* A stale socket file is. */
	{
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int s = socket(AF_UNIX, SOCK_STREAM, 0);

		strcpy(sa.sun_path, paths[0]);
		cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(s);
	}
	cr_assert_eq(virtio_console_create(&d, -1, -1, &o, 1, &gm, &el, &err), 0, "%s", err.msg);
	virtio_console_destroy(d);
	cr_assert_neq(stat(paths[0], &st), 0, "destroy leaves the socket behind");
}

Test(virtio_console, without_multiport_port0_is_open_from_the_start)
{
	uint8_t *buf;
	uint32_t len;

	start(1);
	dev->ops->reset(dev);
	dev->guest_features = (1ULL << VIRTIO_F_VERSION_1);
	setup_queues();
	cr_assert_eq(dev->ops->activate(dev), 0);
	post_rx(0, 16);
	virtio_console_input(dev, (const uint8_t *)"k", 1);
	cr_assert(take_used(0, &buf, &len));
	cr_assert_eq(len, 1);
	cr_assert_eq(buf[0], 'k');
}

/*
 * Without MULTIPORT only port 0's pair exists (§5.3.2): kicks on the control queues or on a
 * named port's queues are ignored, and a client coming and going touches no queue either.
 */
Test(virtio_console, without_multiport_only_port0_queues_exist)
{
	struct virtio_console_control m = {
	    .id = VIRTIO_CONSOLE_BAD_ID, .event = VIRTIO_CONSOLE_DEVICE_READY, .value = 1};
	int fd;

	start(1);
	dev->ops->reset(dev);
	dev->guest_features = (1ULL << VIRTIO_F_VERSION_1);
	setup_queues();
	/* Queued before DRIVER_OK, then kicked after it. */
	post_ctrl_rx(4);
	post(3, &m, sizeof(m), 1);
	cr_assert_eq(dev->ops->activate(dev), 0);
	kick(2);
	kick(3);
	cr_assert_not(take_used(3, NULL, NULL), "control tx served without MULTIPORT");
	cr_assert_not(take_used(2, NULL, NULL), "control rx served without MULTIPORT");

	post(5, "x", 1, 1);
	kick(5);
	post_rx(4, 16);
	kick(4);
	fd = connect_client(paths[0]);
	cr_assert_eq(write(fd, "y", 1), 1);
	close(fd);
	for (int i = 0; i < 5; i++)
		pump(10);
	cr_assert_not(take_used(5, NULL, NULL), "port 1 tx served without MULTIPORT");
	cr_assert_not(take_used(4, NULL, NULL), "port 1 rx served without MULTIPORT");
	cr_assert_eq(stats().ctrl_malformed, 0);
	cr_assert_eq(resets, 0);

	/* Port 0 still works. */
	post(1, "ok", 2, 1);
	kick(1);
	cr_assert(take_used(1, NULL, NULL));
}

/*
 * Port 0 output must never block the event loop, even on a blocking stdout whose reader
 * stalls: the kick returns, the rest waits in the device, and once the reader drains every
 * byte arrives in order. The caller's fd keeps its flags (others may share it).
 */
static void stalled_reader(int rd, int wr, size_t total)
{
	static uint8_t data[768 * 1024], got[768 * 1024];
	unsigned int chains = (unsigned int)(total / 16384);
	int flags = fcntl(wr, F_GETFL);
	size_t have = 0;

	cr_assert_leq(total, sizeof(data));
	cr_assert_eq(flags & O_NONBLOCK, 0, "the test needs a blocking fd");
	start_out(0, wr);
	pattern(data, total, 13);
	for (unsigned int i = 0; i < chains; i++)
		post(1, data + i * 16384, 16384, 1 + i % 3);
	kick(1); /* hangs here (and the test times out) if the device writes blocking */
	cr_assert_lt(count_used(1), chains, "it all fit: the test proves nothing");
	cr_assert_eq(fcntl(wr, F_GETFL), flags, "the shared fd's flags were changed");
	cr_assert_eq(pump(50), 0, "polled for output while the reader is stalled");

	cr_assert_eq(fcntl(rd, F_SETFL, fcntl(rd, F_GETFL) | O_NONBLOCK), 0);
	for (int tries = 0; have < total && tries < 2000; tries++) {
		ssize_t n = read(rd, got + have, total - have);

		if (n > 0)
			have += (size_t)n;
		pump(5);
	}
	cr_assert_eq(have, total);
	cr_assert_eq(memcmp(got, data, total), 0, "bytes lost or out of order");
	cr_assert_eq(fqs[1].used_seen + count_used(1), chains);
	cr_assert_eq(stats().output_discarded, 0);
	cr_assert_eq(stats().tx_bytes, total);
}

Test(virtio_console, port0_output_to_blocking_pipe_never_blocks, .timeout = 10)
{
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	stalled_reader(p[0], p[1], 96 * 1024);
	virtio_console_destroy(dev);
	dev = NULL;
	close(p[0]);
	close(p[1]);
}

Test(virtio_console, port0_output_to_blocking_socket_never_blocks, .timeout = 10)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	stalled_reader(sv[0], sv[1], 768 * 1024);
	virtio_console_destroy(dev);
	dev = NULL;
	close(sv[0]);
	close(sv[1]);
}
