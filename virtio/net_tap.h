/*
 * The tap back end of virtio-net: a Linux tap device (Documentation/networking/tuntap.rst)
 * opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, one fd per queue pair (IFF_MULTI_QUEUE when
 * there are several), or one fd handed to us already open (fd=N from a privileged parent).
 *
 * Every frame read or written carries a virtio-net header of the size set with
 * net_tap_set_vnet_hdr_len(), so the device model passes headers through unchanged.
 *
 * An fd that is not a tap (TUNGETIFF fails: a socketpair, for tests) is accepted as a "raw"
 * back end: frames still carry the header (the peer writes and reads it), no ioctl is made
 * on it and no offloads are offered. vhost-net cannot use such an fd.
 *
 * Threads: opened and closed by the VMM's main thread; the ioctls after that are made by
 * the device on the event-loop thread.
 */
#ifndef KESTREL_VIRTIO_NET_TAP_H
#define KESTREL_VIRTIO_NET_TAP_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/error.h"

/* Queue pairs one device may have: 2 * pairs + the control queue <= VIRTIO_MAX_QUEUES. */
#define NET_TAP_MAX_QUEUES 31

struct net_tap {
	int fds[NET_TAP_MAX_QUEUES];
	unsigned int nr_fds;
	bool is_tap;	       /* false: a raw fd for tests, no tap ioctls */
	bool multi_queue;      /* IFF_MULTI_QUEUE: queues can be attached/detached */
	unsigned int offloads; /* TUN_F_* the tap accepts (probed) */
	char ifname[IFNAMSIZ];
};

/*
 * Creates or attaches to tap NAME with queues fds (queues > 1: IFF_MULTI_QUEUE). All fds are
 * O_NONBLOCK and close-on-exec. Errors are one line naming the fix (no permission: needs
 * CAP_NET_ADMIN, run as root, or pass fd=N).
 */
int net_tap_open(struct net_tap *t, const char *name, unsigned int queues, struct kerr *err);

/*
 * Uses n fds opened by someone else, one per queue pair (dups are kept: the caller still owns
 * its fds). A tap must have IFF_TAP, IFF_NO_PI and IFF_VNET_HDR (and IFF_MULTI_QUEUE when
 * n > 1, all fds queues of one interface); fds that are not taps become a raw back end.
 */
int net_tap_adopt(struct net_tap *t, const int *fds, unsigned int n, struct kerr *err);

void net_tap_close(struct net_tap *t);

/* TUNSETVNETHDRSZ on every queue (10 or 12). No-op on a raw fd. */
int net_tap_set_vnet_hdr_len(struct net_tap *t, int len);

/* TUNSETOFFLOAD(TUN_F_*) on every queue. No-op on a raw fd. */
int net_tap_set_offload(struct net_tap *t, unsigned int tun_flags);

/* TUNSETQUEUE: attach (enable) or detach queue i of a multiqueue tap. No-op otherwise. */
int net_tap_enable_queue(struct net_tap *t, unsigned int i, bool enable);

/* Best effort SIOCSIFMTU (needs CAP_NET_ADMIN; failure is ignored by the caller). */
int net_tap_set_mtu(struct net_tap *t, unsigned int mtu);

/* TUN_F_* for the virtio-net guest offload bits set in features (VIRTIO_NET_F_GUEST_*). */
unsigned int net_tap_offload_flags(uint64_t features);

#endif
