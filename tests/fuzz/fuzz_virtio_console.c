/*
 * virtio-console with MULTIPORT behind virtio-pci: port 0 on two pipes and one named port on a
 * unix socket a fuzzer-driven client connects to, writes into and hangs up.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/fuzz/harness.h"
#include "virtio/console.h"

enum { OP_CONNECT, OP_SEND, OP_HANGUP, OP_TYPE, OP_READ, OP__COUNT };

static char dir[] = "/tmp/kestrel-fuzz-console-XXXXXX";
static char sock_path[sizeof(dir) + 16];
static int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
static int client = -1;

static void remove_dir(void)
{
	rmdir(dir);
}

static void init(void)
{
	if (!mkdtemp(dir))
		fuzz_die("mkdtemp failed");
	atexit(remove_dir);
	snprintf(sock_path, sizeof(sock_path), "%s/port.sock", dir);
	/* Non-blocking both ways: the harness never waits on the device, nor it on us. */
	if (pipe2(in_pipe, O_CLOEXEC | O_NONBLOCK) || pipe2(out_pipe, O_CLOEXEC | O_NONBLOCK))
		fuzz_die("pipe2 failed");
}

static struct virtio_dev *create(const struct guest_mem *mem, struct event_loop *loop)
{
	struct console_port_options port = {.name = "org.kestrel.fuzz", .socket_path = sock_path};
	struct virtio_dev *d;
	struct kerr err;

	if (virtio_console_create(&d, in_pipe[0], out_pipe[1], &port, 1, mem, loop, &err))
		fuzz_die(err.msg);
	return d;
}

static void drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void hang_up(void)
{
	if (client >= 0)
		close(client);
	client = -1;
}

static void op(struct virtio_dev *d, uint8_t sub, const uint8_t *data, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	(void)d;
	switch (sub % OP__COUNT) {
	case OP_CONNECT:
		hang_up();
		client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (client < 0)
			fuzz_die("socket failed");
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
		if (connect(client, (struct sockaddr *)&sa, sizeof(sa)) && errno != EAGAIN)
			fuzz_die("connect to the port failed");
		break;
	case OP_SEND:
		/* ENOTCONN: the connect met a full backlog (EAGAIN) and never completed. */
		if (client >= 0 && send(client, data, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		    errno != EAGAIN && errno != EPIPE && errno != ECONNRESET && errno != ENOTCONN)
			fuzz_die("send to the port failed");
		break;
	case OP_HANGUP:
		hang_up();
		break;
	case OP_TYPE:
		if (write(in_pipe[1], data, len) < 0 && errno != EAGAIN)
			fuzz_die("write to console input failed");
		break;
	case OP_READ:
		if (client >= 0)
			drain(client);
		drain(out_pipe[0]);
		break;
	}
}

static void destroy(struct virtio_dev *d)
{
	hang_up();
	virtio_console_destroy(d);
	drain(in_pipe[0]);
	drain(out_pipe[0]);
}

const struct fuzz_target fuzz_target = {
    .init = init,
    .create = create,
    .op = op,
    .destroy = destroy,
};
