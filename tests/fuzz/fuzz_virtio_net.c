/*
 * virtio-net (kestrel's own data path, two queue pairs) behind virtio-pci. Each pair's "tap" is
 * a SOCK_SEQPACKET socketpair: the fuzzer sends frames (virtio-net header included) into the
 * other end and reads what the guest transmitted.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/fuzz/harness.h"
#include "virtio/net.h"

#define PAIRS 2

enum { OP_FRAME, OP_DRAIN, OP__COUNT };

static int peer[PAIRS] = {-1, -1};
/* Tap input and RX kicks on a loop of their own, as in kestrel (vmm/vm.h). */
static struct event_loop rx_loop;

static void init(void)
{
	struct kerr err;

	if (event_loop_init(&rx_loop, &err))
		fuzz_die(err.msg);
}

static void step(void)
{
	if (event_loop_run_once(&rx_loop, 0) < 0)
		fuzz_die("epoll_wait failed");
}

static struct virtio_dev *create(const struct guest_mem *mem, struct event_loop *loop)
{
	struct net_options o = {
	    .tap_fd = -1, .queues = PAIRS, .vhost = NET_VHOST_OFF, .rx_loop = &rx_loop};
	struct virtio_dev *d;
	int fds[PAIRS], sv[2];
	struct kerr err;

	for (int i = 0; i < PAIRS; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv))
			fuzz_die("socketpair failed");
		peer[i] = sv[0];
		fds[i] = sv[1];
	}
	if (virtio_net_create_fds(&d, &o, fds, PAIRS, mem, loop, &err))
		fuzz_die(err.msg);
	/* The device keeps its own dups. */
	for (int i = 0; i < PAIRS; i++)
		close(fds[i]);
	return d;
}

/* sub: the pair in bit 0, what happens in the rest. */
static void op(struct virtio_dev *d, uint8_t sub, const uint8_t *data, size_t len)
{
	int fd = peer[sub % PAIRS];
	char buf[65536];

	(void)d;
	switch ((sub / PAIRS) % OP__COUNT) {
	case OP_FRAME:
		/* A full socket is a tap that drops: fine either way. */
		if (send(fd, data, len, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS)
			fuzz_die("send to the tap peer failed");
		break;
	case OP_DRAIN:
		while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
			;
		break;
	}
}

static void destroy(struct virtio_dev *d)
{
	virtio_net_destroy(d);
	for (int i = 0; i < PAIRS; i++) {
		close(peer[i]);
		peer[i] = -1;
	}
}

const struct fuzz_target fuzz_target = {
    .init = init, .create = create, .op = op, .destroy = destroy, .step = step};
