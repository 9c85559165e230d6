/*
 * The modern virtio-pci transport driven the way a guest driver drives it: config cycles on
 * the function, MMIO on BAR 0 through the PCI bus. Behind it sit a fake device (records the
 * ops the transport calls) and a fake platform (records ioeventfd binds and MSI routes). The
 * event loop is initialized but never started, so event_loop_call runs its work at once and
 * posted work runs when a test drains the loop's call queue.
 */
#pragma once

#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/pci.h"
#include "fixture_guest_mem.h"
#include "fixture_pci.h"
#include "virtio/pci.h"
#include "vmm/event_loop.h"

#define TEST_DEVID 0x28 /* slot 5: what an ITS translates MSIs by */

#define RAM_SIZE (1ULL << 20)
#define NQ 2
#define QMAX 256
#define CFG_LEN 8
#define FAKE_ID 4 /* entropy device: any id works for the transport */
#define FIRST_GSI 24
#define INTX_IRQ 11

/* Ring addresses per queue: 64 KiB apart, each ring on its own page. */
#define DESC(q) (0x10000ULL * ((q) + 1))
#define AVAIL(q) (DESC(q) + 0x1000)
#define USED(q) (DESC(q) + 0x2000)

#define HOST_FEATURES                                                                              \
	((1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << 3) | \
	 (1ULL << 35))

extern struct event_loop loop;
extern struct pci_bus bus;
extern struct pci_window win;
extern struct virtio_dev dev;
extern struct virtio_pci *vp;
extern uint64_t bar_base;

/* ---- fake device: what the transport asked of it ---- */

extern uint8_t cfg_bytes[CFG_LEN];
extern unsigned int activates, resets, config_reads, config_writes;
extern unsigned int notifies[NQ], irq_changes[NQ];
extern int activate_result;
extern uint32_t last_cfg_off, last_cfg_len;
extern uint8_t last_cfg_data[8];
/* Activations without a reset in between: must stay 0 whatever the driver does. */
extern unsigned int double_activations;
/* Run inside the device's reset, as another vCPU would while it is going on. */
extern void (*during_reset)(void);
/* Feature sets containing all of these bits are refused (a dependency rule). */
extern uint64_t refused_combo;
/* The device's queue_loop for queue 1 (NULL: the transport's loop); set before setup(). */
extern struct event_loop *queue1_loop;

/* ---- fake platform: ioeventfd binds, MSI routes, irqfds, INTx ---- */

#define MAX_REC 64

struct ioefd_rec {
	int efd;
	uint64_t addr;
	bool assign;
};

struct route_rec {
	uint32_t gsi;
	uint64_t addr;
	uint32_t data;
};

extern struct ioefd_rec ioefds[MAX_REC];
extern unsigned int nr_ioefds;
extern unsigned int nr_route_adds;
extern uint32_t route_devids[MAX_REC];
extern struct route_rec route_sets[MAX_REC];
extern unsigned int nr_route_sets;
extern int intx_level;
extern unsigned int intx_calls;
/* Which eventfd is attached as the irqfd of each GSI (-1: none). */
extern int irqfd_of[FIRST_GSI + MAX_REC];

/* ---- set-up ---- */

void reset_records(void);
/* Runs the work the transport posted to the (not running) event loop. */
void drain_loop(void);
void enable_memory(bool on);
void setup(void);
void teardown(void);

/* ---- guest-side accessors ---- */

void bar_write(uint64_t off, unsigned int size, uint64_t v);
uint64_t bar_read(uint64_t off, unsigned int size);

#define CC(field) offsetof(struct virtio_pci_common_cfg, field)
#define CSIZE(field) sizeof(((struct virtio_pci_common_cfg *)0)->field)
#define CW(field, v) bar_write(VPCI_COMMON_OFF + CC(field), CSIZE(field), (v))
#define CR(field) bar_read(VPCI_COMMON_OFF + CC(field), CSIZE(field))

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK
#define S_NR VIRTIO_CONFIG_S_NEEDS_RESET

#define VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define ISR_QUEUE 0x1 /* ISR bit 0: used buffers */

uint64_t device_features(void);
void write_guest_features(uint64_t f);
uint64_t read_guest_features(void);
/* ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns the status read back. */
uint8_t negotiate(uint64_t features);
void program_queue(uint16_t q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used);
void enable_queue(uint16_t q);
/* The whole driver bring-up: features, both queues, DRIVER_OK. */
void bring_up(void);
uint64_t read_efd(int fd);
unsigned int msix_cap(void);
void msix_enable(bool on);
void msix_program(unsigned int v, uint64_t addr, uint32_t data, bool masked);
/* Collects the vendor-specific capabilities by cfg_type; returns how many there are. */
unsigned int vendor_caps(unsigned int off_by_type[16]);
void expect_cap(unsigned int off, unsigned int len, uint32_t offset, uint32_t min_length,
		uint32_t max_length);

/* ---- the VIRTIO_PCI_CAP_PCI_CFG window ---- */

void window_set(uint32_t offset, uint32_t length);
uint32_t window_read(unsigned int size);
void window_write(unsigned int size, uint32_t v);
