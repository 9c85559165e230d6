/*
 * The vhost-net back end of virtio-net: the kernel serves a queue pair's RX and TX rings
 * straight from guest memory and the tap (include/uapi/linux/vhost.h). One /dev/vhost-net fd
 * per queue pair, owned by this process (VHOST_SET_OWNER); within it, vring 0 is the pair's
 * receive queue and vring 1 its transmit queue. The control queue stays in kestrel.
 *
 * The argument builders (memory table, vring addresses, feature word) are pure functions so
 * they can be tested without /dev/vhost-net.
 *
 * Threads: opened and closed by the VMM's main thread; started and stopped by the device on
 * the event-loop thread.
 */
#ifndef KESTREL_VIRTIO_NET_VHOST_H
#define KESTREL_VIRTIO_NET_VHOST_H

#include <linux/vhost.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/net_tap.h"
#include "virtio/queue.h"
#include "vmm/error.h"
#include "vmm/guest_mem.h"

struct net_vhost {
	int fds[NET_TAP_MAX_QUEUES];
	unsigned int nr_fds;
	uint64_t features; /* VHOST_GET_FEATURES */
};

/* One vring's parameters for net_vhost_start_vring. */
struct net_vhost_vring {
	unsigned int index; /* 0: RX, 1: TX */
	unsigned int num;   /* queue size */
	uint16_t base;	    /* last_avail_idx */
	struct vhost_vring_addr addr;
	int kick_fd, call_fd;
};

/*
 * Opens pairs fds, each with VHOST_SET_OWNER and VHOST_GET_FEATURES. Fails (nothing left
 * open, err says why, errno-style reason in err) when /dev/vhost-net cannot be opened or set
 * up.
 */
int net_vhost_open(struct net_vhost *v, unsigned int pairs, struct kerr *err);
void net_vhost_close(struct net_vhost *v);

/*
 * What VHOST_SET_FEATURES gets: the guest's features that vhost knows, without
 * VHOST_NET_F_VIRTIO_NET_HDR (the tap has IFF_VNET_HDR and handles the header itself).
 */
uint64_t net_vhost_features(uint64_t guest_features, uint64_t vhost_features);

/* A malloc'd VHOST_SET_MEM_TABLE argument with one region per RAM region, or NULL. */
struct vhost_memory *net_vhost_mem_table(const struct guest_mem *mem);

/* VHOST_SET_VRING_ADDR's argument from the host views of a ready virtqueue. */
void net_vhost_vring_addr(struct vhost_vring_addr *a, unsigned int index,
			  const struct virtqueue *vq);

/* VHOST_SET_FEATURES and VHOST_SET_MEM_TABLE on pair's fd. */
int net_vhost_setup(struct net_vhost *v, unsigned int pair, uint64_t features,
		    const struct vhost_memory *mem, struct kerr *err);

/* VHOST_SET_VRING_NUM, _BASE, _ADDR, _KICK and _CALL for one vring. */
int net_vhost_start_vring(struct net_vhost *v, unsigned int pair, const struct net_vhost_vring *r,
			  struct kerr *err);

/* VHOST_SET_VRING_CALL again (the driver moved the queue's interrupt). */
int net_vhost_set_call(struct net_vhost *v, unsigned int pair, unsigned int index, int fd);

/* VHOST_NET_SET_BACKEND for both vrings: the tap fd to start, -1 to stop. */
int net_vhost_set_backend(struct net_vhost *v, unsigned int pair, int tap_fd, struct kerr *err);

/*
 * Stops one vring: VHOST_GET_VRING_BASE (returns last_avail_idx in *base, -1 on failure),
 * then unbinds its kick and call fds so the transport gets the kicks back.
 */
int net_vhost_stop_vring(struct net_vhost *v, unsigned int pair, unsigned int index,
			 uint16_t *base);

#endif
