/*
 * virtio-net (VIRTIO 1.2 §5.1) on a tap device, with the data path either in kestrel (the
 * event loop reads and writes the tap) or in the kernel (vhost-net).
 *
 * Queues: rx0 tx0 rx1 tx1 ... and the control queue last (index 2 * pairs). Without MQ
 * negotiated only the first pair exists for the driver and the control queue is index 2.
 *
 * Threads: the data path, the control queue, activate and reset run on the event-loop thread
 * (the transport hands activate/reset there); config space is read and written by vCPU
 * threads and guarded by its own small lock. Interrupts (signal_queue, signal_config,
 * needs_reset) are raised with no device lock held.
 *
 * Behaviour worth knowing:
 * - RX (in kestrel): a frame is read from the tap only when the guest has posted a receive
 *   buffer; with none the tap fd is not polled for input at all until the guest kicks the
 *   receive queue. With MRG_RXBUF a frame may span several buffers (num_buffers in its
 *   header). If the buffers run out in the middle of a frame, the buffers already filled
 *   are held (not yet used) and the frame is finished when the guest posts more: nothing is
 *   dropped and the used ring only ever sees whole frames. Without MRG_RXBUF a frame that
 *   does not fit the next buffer is dropped (counted) and the buffer is reused.
 * - TX (in kestrel): a chain is written as one frame. If the tap is full the chain is put
 *   back and the queue waits for the tap to become writable. Chains with writable buffers,
 *   shorter than the header or with an empty frame, or with a header asking for offloads the
 *   driver did not negotiate, are dropped, counted and completed.
 * - Feature rules (§5.1.3.1) are checked at DRIVER_OK: a driver that accepted e.g. GUEST_TSO4
 *   without GUEST_CSUM, or CTRL_RX without CTRL_VQ, gets NEEDS_RESET.
 * - RX mode and MAC filter commands are accepted and recorded, not enforced: the tap and the
 *   guest's own stack filter (vhost-net does not filter either).
 */
#ifndef KESTREL_VIRTIO_NET_H
#define KESTREL_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/device.h"
#include "vmm/error.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"

#define VIRTIO_NET_QUEUE_SIZE 256
/* Queue pairs: 2 * pairs + 1 queues must fit VIRTIO_MAX_QUEUES. */
#define VIRTIO_NET_MAX_PAIRS ((VIRTIO_MAX_QUEUES - 1) / 2)
/* Entries of each MAC filter table that are kept; more set the table's overflow flag. */
#define VIRTIO_NET_MAC_TABLE_MAX 64

struct net_options {
	const char *tap_name; /* tap=NAME, or NULL with tap_fd */
	int tap_fd;	      /* -1 unless fd=N (kestrel keeps a dup; the caller keeps fd) */
	uint8_t mac[6];
	bool mac_set;
	unsigned int mtu;    /* 0: default (1500, MTU feature not offered) */
	unsigned int queues; /* queue pairs, >= 1 (0 is taken as 1) */
	enum net_vhost_mode { NET_VHOST_AUTO, NET_VHOST_ON, NET_VHOST_OFF } vhost;
	unsigned int index; /* NIC number, for the default MAC */
	/* Where tap input is read: a loop of its own (not SCHED_BATCH, vmm/vm.h says why), or
	 * NULL for the device's loop. */
	struct event_loop *rx_loop;
};

/* Counters, under the device lock (the event-loop threads); read them with the VM paused. */
struct virtio_net_stats {
	uint64_t rx_frames, rx_bytes; /* delivered to the guest (bytes without header) */
	uint64_t rx_short;	      /* read from the tap shorter than a header: dropped */
	uint64_t rx_too_big;	      /* larger than the guest's buffer (no MRG_RXBUF): dropped */
	uint64_t rx_no_room;	      /* MRG_RXBUF frame larger than the whole queue: dropped */
	uint64_t rx_bad_buffers;      /* receive buffers too small for a header: returned empty */
	uint64_t rx_errors;	      /* tap read errors */
	uint64_t tx_frames, tx_bytes; /* written to the tap (bytes without header) */
	uint64_t tx_malformed;	      /* bad chains (writable buffers, short, bad header) */
	uint64_t tx_empty;	      /* header-only chains (zero-length frame) */
	uint64_t tx_errors;	      /* tap write errors and short writes */
	uint64_t tx_blocked;	      /* times the tap was full (EAGAIN) */
	uint64_t ctrl_ok, ctrl_err;   /* control commands answered OK / ERR */
	uint64_t ctrl_malformed;      /* control chains without a status byte */
	uint64_t queue_errors;	      /* broken queues (NEEDS_RESET) */
	uint64_t feature_errors;      /* activations refused for feature rule violations */
	uint64_t vhost_failures;      /* vhost start failures (fell back to kestrel) */
};

/* Driver-controlled state, for tests and metrics. */
struct virtio_net_info {
	uint8_t mac[6];
	uint16_t status;
	unsigned int hdr_len;	 /* negotiated header size: 10 or 12 */
	unsigned int curr_pairs; /* queue pairs in use (VQ_PAIRS_SET) */
	uint64_t guest_offloads; /* VIRTIO_NET_F_GUEST_* bits in effect */
	bool promisc, allmulti;
	unsigned int uc_entries, mc_entries;
	bool uc_overflow, mc_overflow;
	bool vhost_running;
};

/*
 * Opens the tap (or adopts fd=N) and, for vhost=on/auto, /dev/vhost-net. Fails with one line
 * in err: no permission on /dev/net/tun, queues > 1 with fd=, vhost=on without vhost-net...
 * With vhost=auto and no usable vhost-net the device runs its data path in kestrel and
 * virtio_net_backend() says why. loop is required.
 */
int virtio_net_create(struct virtio_dev **out, const struct net_options *o,
		      const struct guest_mem *mem, struct event_loop *loop, struct kerr *err);

/*
 * The same with nfds already-open fds, one per queue pair (o->tap_name, o->tap_fd and
 * o->queues are ignored): the queues of one IFF_MULTI_QUEUE tap opened by a privileged
 * parent, or, for tests, fds that are not taps (socketpairs; frames carry the header).
 */
int virtio_net_create_fds(struct virtio_dev **out, const struct net_options *o, const int *fds,
			  unsigned int nfds, const struct guest_mem *mem, struct event_loop *loop,
			  struct kerr *err);

/* Stops vhost, unregisters from the event loop and closes everything. Call with the event-loop
 * thread stopped (or no callback of this device running). NULL is fine. */
void virtio_net_destroy(struct virtio_dev *d);

/* "vhost-net" or "tap" (with the reason after a vhost=auto fallback), for the VMM's log. */
const char *virtio_net_backend(const struct virtio_dev *d);

/* The tap interface's name ("fdN" for a raw fd). */
const char *virtio_net_ifname(const struct virtio_dev *d);

const struct virtio_net_stats *virtio_net_stats(const struct virtio_dev *d);
void virtio_net_get_info(struct virtio_dev *d, struct virtio_net_info *out);

/*
 * Asks the guest to announce itself (gratuitous ARP, e.g. after the host network changed):
 * sets VIRTIO_NET_S_ANNOUNCE and raises a config interrupt if GUEST_ANNOUNCE was negotiated.
 * Any thread.
 */
void virtio_net_announce(struct virtio_dev *d);

/*
 * §5.1.3.1 feature dependencies: 0 if features is a valid set for a driver to accept,
 * otherwise -1 with *why naming the rule broken.
 */
int virtio_net_check_features(uint64_t features, const char **why);

/* The default MAC for a NIC: 52:54:00 and 3 bytes hashed from the tap name and index. */
void virtio_net_default_mac(uint8_t mac[6], const char *name, unsigned int index);

#endif
