#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fixture_virtio_console.h"

struct event_loop el;
struct virtio_dev *dev;
int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
char tmpdir[64];
char paths[2][128];
struct fq fqs[NQ];

struct vring_avail *avail(unsigned int q)
{
	return fx_avail(&fqs[q].r);
}

struct vring_used *used(unsigned int q)
{
	return fx_used(&fqs[q].r);
}

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
uint16_t post(unsigned int q, const void *data, uint32_t len, unsigned int nsegs)
{
	struct fq *f = &fqs[q];
	uint16_t head = f->r.next_desc;
	uint32_t off = 0;

	for (unsigned int i = 0; i < nsegs; i++) {
		uint16_t di = f->r.next_desc;
		uint32_t seg = i == nsegs - 1 ? len - off : len / nsegs;
		uint64_t gpa = alloc_buf(q, seg);

		if (data)
			memcpy(host(gpa), (const uint8_t *)data + off, seg);
		else
			memset(host(gpa), 0xee, seg);
		if (i == 0)
			f->head_buf[head] = gpa;
		f->r.next_desc = (f->r.next_desc + 1) % QS;
		fx_set_desc(f->r.desc, di, gpa, seg,
			    (data ? 0 : VRING_DESC_F_WRITE) |
				(i < nsegs - 1 ? VRING_DESC_F_NEXT : 0),
			    f->r.next_desc);
		off += seg;
	}
	fx_make_avail(&f->r, head);
	return head;
}

uint16_t post_rx(unsigned int q, uint32_t len)
{
	return post(q, NULL, len, 1);
}

/* The next used entry: true with its buffer and length, false if there is none. */
bool take_used(unsigned int q, uint8_t **buf, uint32_t *len)
{
	struct fq *f = &fqs[q];
	struct vring_used_elem *e = fx_take_used(&f->r);

	if (!e)
		return false;
	cr_assert_lt(e->id, QS);
	if (buf)
		*buf = host(f->head_buf[e->id]);
	if (len)
		*len = e->len;
	return true;
}

unsigned int count_used(unsigned int q)
{
	unsigned int n = 0;

	while (take_used(q, NULL, NULL))
		n++;
	return n;
}

void kick(unsigned int q)
{
	dev->ops->queue_notify(dev, (uint16_t)q);
}

int pump(int timeout_ms)
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

/* Every queue's driver state back to empty, its rings at RING_GPA(q). */
static void fqs_reset(void)
{
	memset(fqs, 0, sizeof(fqs));
	for (unsigned int q = 0; q < NQ; q++)
		fx_vring_init(&fqs[q].r, QS, RING_GPA(q), RING_GPA(q) + 0x1000,
			      RING_GPA(q) + 0x2000);
}

void setup_queues(void)
{
	memset(host(RING_GPA(0)), 0, RING_GPA(NQ) - RING_GPA(0));
	fqs_reset();
	for (unsigned int q = 0; q < dev->num_queues; q++) {
		fqs[q].buf_next = BUF_GPA(q);
		virtq_reset(&dev->vqs[q]);
		cr_assert_eq(virtq_setup(&dev->vqs[q], &gm, QS, RING_GPA(q), RING_GPA(q) + 0x1000,
					 RING_GPA(q) + 0x2000, dev->guest_features, NULL),
			     0);
	}
}

/* Creates the device with nr named ports and brings it to DRIVER_OK. */
void start_out(unsigned int nr, int out_fd)
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
	dev->transport = &fx_transport;
	dev->guest_features = dev->host_features | (1ULL << VIRTIO_F_VERSION_1);
	setup_queues();
	cr_assert_eq(dev->ops->activate(dev), 0);
}

void start(unsigned int nr)
{
	start_out(nr, out_pipe[1]);
}

void suite_init(void)
{
	fx_guest_mem_map(RAM_SIZE);
	fqs_reset();
	cr_assert_eq(event_loop_init(&el, NULL), 0);
	cr_assert_eq(pipe2(in_pipe, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out_pipe, O_CLOEXEC | O_NONBLOCK), 0);
	strcpy(tmpdir, "/tmp/kestrel-console-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(paths[0], sizeof(paths[0]), "%s/one.sock", tmpdir);
	snprintf(paths[1], sizeof(paths[1]), "%s/two.sock", tmpdir);
	fx_transport_clear();
	dev = NULL;
}

void suite_fini(void)
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
	fx_guest_mem_unmap();
}

/* Control protocol helpers */

void guest_ctrl(uint32_t id, uint16_t event, uint16_t value)
{
	struct virtio_console_control m = {.id = id, .event = event, .value = value};

	post(3, &m, sizeof(m), 1);
	kick(3);
	cr_assert(take_used(3, NULL, NULL), "control tx chain not completed");
}

void post_ctrl_rx(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		post_rx(2, 4096);
}

/* The next message the device sent on control rx; returns its extra bytes (PORT_NAME). */
uint32_t expect_ctrl(uint32_t id, uint16_t event, uint16_t value, uint8_t **extra)
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

void expect_no_ctrl(void)
{
	cr_assert_not(take_used(2, NULL, NULL), "unexpected control message");
}

/* DEVICE_READY and PORT_READY for every port, checking the device's answers. */
void handshake(unsigned int nr)
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

void ready_port(uint32_t id, const char *name)
{
	uint8_t *extra;

	guest_ctrl(id, VIRTIO_CONSOLE_PORT_READY, 1);
	cr_assert_eq(expect_ctrl(id, VIRTIO_CONSOLE_PORT_NAME, 0, &extra), strlen(name));
	cr_assert_eq(memcmp(extra, name, strlen(name)), 0);
}

int connect_client(const char *path)
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
int open_port1(void)
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

struct virtio_console_stats stats(void)
{
	struct virtio_console_stats s;

	virtio_console_get_stats(dev, &s);
	return s;
}

void pattern(uint8_t *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + seed + i / 251);
}
