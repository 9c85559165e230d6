#include "virtio/net_tap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* What we try to enable on the tap; TUN_F_UFO is probed on its own (newer kernels take it
 * only for compatibility, older ones not at all). */
#define TAP_BASE_OFFLOADS (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)

static void tap_init(struct net_tap *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned int i = 0; i < NET_TAP_MAX_QUEUES; i++)
		t->fds[i] = -1;
}

void net_tap_close(struct net_tap *t)
{
	for (unsigned int i = 0; i < NET_TAP_MAX_QUEUES; i++) {
		if (t->fds[i] >= 0)
			close(t->fds[i]);
		t->fds[i] = -1;
	}
	t->nr_fds = 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

/* Which offloads the tap takes; leaves them all off (the guest has not accepted any yet). */
static void probe_offloads(struct net_tap *t)
{
	int fd = t->fds[0];

	t->offloads = 0;
	if (ioctl(fd, TUNSETOFFLOAD, TAP_BASE_OFFLOADS) == 0) {
		t->offloads = TAP_BASE_OFFLOADS;
		if (ioctl(fd, TUNSETOFFLOAD, TAP_BASE_OFFLOADS | TUN_F_UFO) == 0)
			t->offloads |= TUN_F_UFO;
	} else if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM) == 0) {
		t->offloads = TUN_F_CSUM;
	}
	if (ioctl(fd, TUNSETOFFLOAD, 0) < 0)
		t->offloads = 0;
}

/*
 * The tap's send buffer unlimited, as QEMU sets it: under the default (wmem_default, ~208 KiB)
 * a writer that outruns the host's stack is made to wait for write space (vhost-net's TX
 * worker, kestrel's own writev). The setting is the device's: one queue's fd sets every queue,
 * detached ones when they attach. Only a tuning: a tap that refuses keeps its default.
 */
static void tap_prepare(struct net_tap *t)
{
	int unlimited = INT_MAX;

	(void)ioctl(t->fds[0], TUNSETSNDBUF, &unlimited);
	probe_offloads(t);
}

static int open_err(const char *name, int e, struct kerr *err)
{
	if (e == EACCES || e == EPERM)
		return kerr_set(err,
				"cannot open tap %s: /dev/net/tun: %s (needs CAP_NET_ADMIN: run "
				"as root, give kestrel cap_net_admin, or pass an open tap with "
				"--net fd=N)",
				name, strerror(e));
	if (e == ENOENT || e == ENODEV || e == ENXIO)
		return kerr_set(err, "cannot open tap %s: /dev/net/tun: %s (modprobe tun)", name,
				strerror(e));
	return kerr_set(err, "cannot open tap %s: /dev/net/tun: %s", name, strerror(e));
}

static int setiff_err(const char *name, bool mq, int e, struct kerr *err)
{
	if (e == EPERM || e == EACCES)
		return kerr_set(err,
				"cannot attach to tap %s: %s (needs CAP_NET_ADMIN, or a tap "
				"created for this user: ip tuntap add %s mode tap%s user $USER; "
				"or pass --net fd=N)",
				name, strerror(e), name, mq ? " multi_queue" : "");
	if (e == EBUSY)
		return kerr_set(err, "cannot attach to tap %s: it is in use by another process",
				name);
	if (e == EINVAL)
		return kerr_set(err,
				"cannot attach to tap %s: it exists with other flags (%s; "
				"recreate it with ip tuntap add %s mode tap%s)",
				name,
				mq ? "queues > 1 needs a multi_queue tap"
				   : "it is a multi_queue tap or a tun device",
				name, mq ? " multi_queue" : "");
	return kerr_set(err, "cannot attach to tap %s: %s", name, strerror(e));
}

int net_tap_open(struct net_tap *t, const char *name, unsigned int queues, struct kerr *err)
{
	bool mq = queues > 1;
	struct ifreq ifr;

	tap_init(t);
	if (!name || !*name)
		return kerr_set(err, "net: tap= needs an interface name");
	if (strlen(name) >= IFNAMSIZ)
		return kerr_set(err, "net: tap name '%s' is longer than %d bytes", name,
				IFNAMSIZ - 1);
	if (queues == 0 || queues > NET_TAP_MAX_QUEUES)
		return kerr_set(err, "net: queues=%u is out of range (1..%d)", queues,
				NET_TAP_MAX_QUEUES);
	for (unsigned int i = 0; i < queues; i++) {
		int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);

		if (fd < 0) {
			open_err(name, errno, err);
			goto fail;
		}
		t->fds[i] = fd;
		t->nr_fds++;
		memset(&ifr, 0, sizeof(ifr));
		/* Every queue names the same interface; the first creates it if needed. */
		strcpy(ifr.ifr_name, i ? t->ifname : name);
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (mq ? IFF_MULTI_QUEUE : 0);
		if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
			setiff_err(name, mq, errno, err);
			goto fail;
		}
		if (i == 0) {
			memcpy(t->ifname, ifr.ifr_name, IFNAMSIZ);
			t->ifname[IFNAMSIZ - 1] = 0;
		}
	}
	t->is_tap = true;
	t->multi_queue = mq;
	tap_prepare(t);
	return 0;
fail:
	net_tap_close(t);
	return -1;
}

/* Dups and inspects one fd: 1 a tap (ifr filled), 0 not a tap, -1 error. */
static int adopt_one(struct net_tap *t, int fd, struct ifreq *ifr, struct kerr *err)
{
	int nfd;

	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return kerr_set(err, "net: fd=%d is not an open file descriptor", fd);
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0)
		return kerr_set(err, "net: fd=%d: dup: %s", fd, strerror(errno));
	t->fds[t->nr_fds++] = nfd;
	if (set_nonblock(nfd) < 0)
		return kerr_set(err, "net: fd=%d: cannot make it non-blocking: %s", fd,
				strerror(errno));
	memset(ifr, 0, sizeof(*ifr));
	if (ioctl(nfd, TUNGETIFF, ifr) == 0)
		return 1;
	if (errno == EBADFD)
		return kerr_set(err,
				"net: fd=%d is /dev/net/tun with no interface attached (the parent "
				"must TUNSETIFF it first)",
				fd);
	/* Not a tap at all: a test's socketpair. Frames carry the header as is. */
	return 0;
}

int net_tap_adopt(struct net_tap *t, const int *fds, unsigned int n, struct kerr *err)
{
	struct ifreq ifr;

	tap_init(t);
	if (n == 0 || n > NET_TAP_MAX_QUEUES)
		return kerr_set(err, "net: %u fds given (1..%d)", n, NET_TAP_MAX_QUEUES);
	for (unsigned int i = 0; i < n; i++) {
		int r = adopt_one(t, fds[i], &ifr, err);

		if (r < 0)
			goto fail;
		if (i > 0 && (r == 1) != t->is_tap) {
			kerr_set(err, "net: fd=%d: all fds must be queues of one tap", fds[i]);
			goto fail;
		}
		if (r == 0) {
			snprintf(t->ifname, sizeof(t->ifname), "fd%d", fds[0]);
			continue;
		}
		if (!(ifr.ifr_flags & IFF_TAP) || !(ifr.ifr_flags & IFF_NO_PI) ||
		    !(ifr.ifr_flags & IFF_VNET_HDR)) {
			kerr_set(
			    err,
			    "net: fd=%d (%.*s) must be a tap opened with IFF_TAP | IFF_NO_PI | "
			    "IFF_VNET_HDR",
			    fds[i], IFNAMSIZ, ifr.ifr_name);
			goto fail;
		}
		if (n > 1 && !(ifr.ifr_flags & IFF_MULTI_QUEUE)) {
			kerr_set(err,
				 "net: fd=%d (%.*s): several queues need an IFF_MULTI_QUEUE tap",
				 fds[i], IFNAMSIZ, ifr.ifr_name);
			goto fail;
		}
		if (i > 0 && strncmp(t->ifname, ifr.ifr_name, IFNAMSIZ)) {
			kerr_set(err, "net: fd=%d is tap %.*s, not %s", fds[i], IFNAMSIZ,
				 ifr.ifr_name, t->ifname);
			goto fail;
		}
		memcpy(t->ifname, ifr.ifr_name, IFNAMSIZ);
		t->ifname[IFNAMSIZ - 1] = 0;
		t->is_tap = true;
		t->multi_queue = (ifr.ifr_flags & IFF_MULTI_QUEUE) != 0;
	}
	if (t->is_tap)
		tap_prepare(t);
	return 0;
fail:
	net_tap_close(t);
	return -1;
}

int net_tap_set_vnet_hdr_len(struct net_tap *t, int len)
{
	if (!t->is_tap)
		return 0;
	for (unsigned int i = 0; i < t->nr_fds; i++)
		if (ioctl(t->fds[i], TUNSETVNETHDRSZ, &len) < 0)
			return -1;
	return 0;
}

int net_tap_set_offload(struct net_tap *t, unsigned int tun_flags)
{
	if (!t->is_tap)
		return 0;
	tun_flags &= t->offloads;
	for (unsigned int i = 0; i < t->nr_fds; i++)
		if (ioctl(t->fds[i], TUNSETOFFLOAD, (unsigned long)tun_flags) < 0)
			return -1;
	return 0;
}

int net_tap_enable_queue(struct net_tap *t, unsigned int i, bool enable)
{
	struct ifreq ifr;

	if (!t->is_tap || !t->multi_queue || i >= t->nr_fds)
		return 0;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = enable ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	if (ioctl(t->fds[i], TUNSETQUEUE, &ifr) == 0)
		return 0;
	/* Attaching an attached queue (or detaching a detached one) is EINVAL: already so. */
	return errno == EINVAL ? 0 : -1;
}

int net_tap_set_mtu(struct net_tap *t, unsigned int mtu)
{
	struct ifreq ifr;
	int s, rc;

	if (!t->is_tap)
		return 0;
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, t->ifname, IFNAMSIZ);
	ifr.ifr_mtu = (int)mtu;
	rc = ioctl(s, SIOCSIFMTU, &ifr);
	close(s);
	return rc < 0 ? -1 : 0;
}

unsigned int net_tap_offload_flags(uint64_t features)
{
	unsigned int f = 0;

	/* The tap ignores segmentation offloads without checksum offload. */
	if (!(features & (1ULL << VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	f |= TUN_F_CSUM;
	if (features & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
		f |= TUN_F_TSO4;
	if (features & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
		f |= TUN_F_TSO6;
	if (features & (1ULL << VIRTIO_NET_F_GUEST_ECN))
		f |= TUN_F_TSO_ECN;
	if (features & (1ULL << VIRTIO_NET_F_GUEST_UFO))
		f |= TUN_F_UFO;
	return f;
}
