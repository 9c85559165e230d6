/*
 * virtio-console against a hand-written driver: rings in a fake 16 MiB guest RAM, a fake
 * transport that records interrupts, pipes for the terminal and real unix sockets for the
 * named ports. The event loop is not started: tests pump its epoll fd themselves, which also
 * shows which fds the device asks to be woken for.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fixture_guest_mem.h"
#include "fixture_transport.h"
#include "fixture_vring.h"
#include "virtio/console.h"
#include "vmm/event_loop.h"

#define RAM_SIZE (16 * MiB)
#define QS 256
#define NQ 8 /* port 0, control, two named ports */
#define RING_GPA(q) (0x10000ULL + (q)*0x4000ULL)
#define BUF_GPA(q) (1 * MiB + (q)*MiB)

/* The fake driver's view of one queue. */
struct fq {
	struct fx_vring r;
	uint64_t buf_next;
	uint64_t head_buf[QS]; /* gpa of the first buffer of the chain at each head */
};

extern struct event_loop el;
extern struct virtio_dev *dev;
extern int in_pipe[2], out_pipe[2];
extern char tmpdir[64];
extern char paths[2][128];
extern struct fq fqs[NQ];

/* ---- the driver ---- */

struct vring_avail *avail(unsigned int q);
struct vring_used *used(unsigned int q);
/* A chain of nsegs descriptors over len bytes, all readable (data != NULL) or all writable. */
uint16_t post(unsigned int q, const void *data, uint32_t len, unsigned int nsegs);
uint16_t post_rx(unsigned int q, uint32_t len);
/* The next used entry: true with its buffer and length, false if there is none. */
bool take_used(unsigned int q, uint8_t **buf, uint32_t *len);
unsigned int count_used(unsigned int q);
void kick(unsigned int q);
/* Runs what epoll reports within timeout_ms; returns how many events there were. */
int pump(int timeout_ms);

/* ---- setup ---- */

void setup_queues(void);
/* Creates the device with nr named ports and brings it to DRIVER_OK. */
void start_out(unsigned int nr, int out_fd);
void start(unsigned int nr);
void suite_init(void);
void suite_fini(void);

/* ---- the control protocol ---- */

void guest_ctrl(uint32_t id, uint16_t event, uint16_t value);
void post_ctrl_rx(unsigned int n);
/* The next message the device sent on control rx; returns its extra bytes (PORT_NAME). */
uint32_t expect_ctrl(uint32_t id, uint16_t event, uint16_t value, uint8_t **extra);
void expect_no_ctrl(void);
/* DEVICE_READY and PORT_READY for every port, checking the device's answers. */
void handshake(unsigned int nr);
void ready_port(uint32_t id, const char *name);
int connect_client(const char *path);
/* A port-1 client connected and the port open on both sides. */
int open_port1(void);
struct virtio_console_stats stats(void);
void pattern(uint8_t *buf, size_t len, unsigned int seed);
