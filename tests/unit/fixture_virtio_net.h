/*
 * virtio-net against a hand-written driver: rings are built in a fake 16 MiB guest RAM, the
 * tap is replaced by SOCK_SEQPACKET socketpairs handed in as fds (frames carry the virtio-net
 * header, as on a vnet-header tap), and the event loop is pumped by hand so each test sees
 * exactly which fds the device polls.
 */
#pragma once

#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "fixture_guest_mem.h"
#include "fixture_transport.h"
#include "fixture_vring.h"
#include "virtio/net.h"
#include "vmm/event_loop.h"

#define RAM_SIZE (16 * MiB)
#define QSIZE 256
#define RING_BASE 0x10000ULL /* queue q's rings at RING_BASE + q * 0x4000 */
#define BUF_GPA 0x100000ULL

#define F(b) (1ULL << (b))
#define HDR12 sizeof(struct virtio_net_hdr_mrg_rxbuf)
#define HDR10 sizeof(struct virtio_net_hdr)

extern struct event_loop loop;
extern struct virtio_dev *dev;
extern int peer[4]; /* the "network" end of each pair's socketpair */
extern bool small_sndbuf;
extern struct fx_vring drv[VIRTIO_MAX_QUEUES]; /* the driver's side of each queue */
/* The shared fake transport's counters, and vhost hooks that must not be called. */
extern const struct virtio_transport_ops fake_transport;

/* ---- fake driver ---- */

uint64_t desc_gpa(unsigned int q);
uint64_t avail_gpa(unsigned int q);
uint64_t used_gpa(unsigned int q);
/* Every queue's driver indices back to 0. */
void drv_reset(void);
struct vring_avail *avail(unsigned int q);
struct vring_used *used(unsigned int q);
uint16_t used_idx(unsigned int q);
uint64_t alloc_buf(uint32_t len);
uint16_t add_chain(unsigned int q, const struct fx_seg *s, unsigned int n);
/* One writable buffer of len bytes on receive queue q; returns its gpa. */
uint64_t post_rx(unsigned int q, uint32_t len, uint16_t *head);
/* EVENT_IDX: the avail_event the device publishes after the used ring. */
uint16_t avail_event(unsigned int q);
/* The next used element of q, or NULL. */
struct vring_used_elem *take_used(unsigned int q);

/* ---- the event loop, by hand ---- */

bool is_device_event(const struct epoll_event *e);
/* Runs what epoll reports now, a few rounds; returns how many device events ran. */
int pump(void);
/* Device fds epoll would report now (without running them). */
int pending_device_events(uint32_t mask);

/* ---- setup ---- */

void suite_init(void);
void suite_fini(void);
struct net_options opts(void);
/* A device on pairs socketpairs. */
void create_raw(unsigned int pairs, const struct net_options *o);
/* Sets up every queue with features f and activates; returns activate's result. */
int bring_up(uint64_t f);
uint64_t all_features(void);
void start(uint64_t drop);
void send_frame(int fd, size_t hdr_len, const uint8_t *data, size_t len);
void fill(uint8_t *p, size_t len, unsigned int seed);
uint16_t num_buffers_at(uint64_t gpa);

/* Sends class/cmd with data on the control queue; returns the ack byte (0xee if untouched). */
uint8_t ctrl(uint8_t class, uint8_t cmd, const void *data, size_t len);
