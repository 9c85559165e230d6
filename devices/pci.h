/*
 * PCI: the configuration space of one function (type 0 header, BARs, capability list) and
 * bus 0 with its host bridge, reached through configuration mechanism #1 (ports 0xCF8/0xCFC)
 * or an ECAM window. No KVM here: the VMM learns about BAR moves and INTx through callbacks.
 *
 * Only bus 0 and function 0 of each slot exist; the host bridge takes slot 0.
 */
#ifndef KESTREL_DEVICES_PCI_H
#define KESTREL_DEVICES_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/irq.h"
#include "vmm/error.h"
#include "vmm/io_bus.h"

/*
 * The PC's configuration ports. Where the ECAM window and the BAR window sit is the
 * architecture's choice (arch_layout in arch/arch.h); vmm/ tells the bus.
 */
#define PCI_CF8_PORT 0xcf8 /* CONFIG_ADDRESS, 4 ports; 0xCF9 is the reset control register */
#define PCI_CF8_LEN 4
#define PCI_CFC_PORT 0xcfc /* CONFIG_DATA, 4 ports */
#define PCI_CFC_LEN 4

#define PCI_CFG_SIZE 256
#define PCI_CFG_EXT_SIZE 4096
#define PCI_NR_BARS 6
#define PCI_NR_SLOTS 32
#define PCI_MAX_CFG_HOOKS 8
#define PCI_CAP_START 0x40 /* first byte after the type 0 header */

#define PCI_HOST_BRIDGE_VENDOR 0x8086
#define PCI_HOST_BRIDGE_DEVICE 0x0d57
#define PCI_CLASS_HOST_BRIDGE 0x060000

/* A BAR that does not decode: memory decoding off, or an address no access can reach. */
#define PCI_BAR_UNMAPPED UINT64_MAX

/* pci_add_bar() flags; without PCI_BAR_MEM64 the BAR is a 32-bit memory BAR. */
#define PCI_BAR_MEM64 0x1u
#define PCI_BAR_PREFETCH 0x2u

struct pci_function;

/*
 * A BAR started, stopped or moved decoding; addresses are PCI_BAR_UNMAPPED when not decoded.
 * Runs with f->lock held (on the vCPU thread doing the config write): use the arguments, do
 * not call pci_* functions on f.
 */
typedef void (*pci_bar_remap_fn)(void *opaque, struct pci_function *f, int bar, uint64_t old_addr,
				 uint64_t new_addr);

/*
 * Sees config accesses overlapping its range. offset is the config-space offset of the whole
 * access. Writes: called after the masked store, with the guest's data. Reads: called after
 * data was filled from config space, and may change data. Runs with f->lock held, so it may use
 * pci_cfg_peek/poke but not pci_cfg_read/write on f.
 */
typedef void (*pci_cfg_hook_fn)(void *opaque, struct pci_function *f, unsigned int offset,
				uint8_t *data, unsigned int size, bool is_write);

struct pci_ids {
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys;
	uint32_t class_code; /* base << 16 | sub-class << 8 | prog-if */
	uint8_t revision;
	uint8_t irq_pin; /* 0: no INTx; 1..4: INTA..INTD */
};

struct pci_bar {
	uint64_t size; /* 0: not implemented (or the upper half of a 64-bit BAR) */
	unsigned int flags;
	uint64_t mapped;  /* decoded address or PCI_BAR_UNMAPPED; atomic, read by MMIO dispatch */
	io_handler_fn fn; /* offset is from the BAR's base */
	void *opaque;
};

struct pci_cfg_hook {
	unsigned int start, len;
	pci_cfg_hook_fn fn;
	void *opaque;
	bool unlocked; /* runs after f->lock is dropped (pci_add_cfg_hook_unlocked) */
};

struct pci_function {
	/*
	 * vCPU threads (config cycles) vs. device threads (INTx). Lock order: a device's INTx
	 * lock, then f->lock, then the MSI-X lock (its config hook) or the shared INTx line's
	 * (irq_or.h), then KVM's locks. Nothing that takes a device's lock runs under it: hooks
	 * that need one are unlocked.
	 */
	pthread_mutex_t lock;
	uint8_t cfg[PCI_CFG_EXT_SIZE];
	uint8_t wmask[PCI_CFG_EXT_SIZE];   /* bits a guest write may change */
	uint8_t w1cmask[PCI_CFG_EXT_SIZE]; /* bits a guest clears by writing 1 */
	unsigned int cfg_size; /* PCI_CFG_SIZE, or PCI_CFG_EXT_SIZE for ECAM-only bytes */
	unsigned int next_cap; /* where the next capability goes */
	unsigned int last_cap; /* 0 while the list is empty */
	struct pci_bar bars[PCI_NR_BARS];
	struct pci_cfg_hook hooks[PCI_MAX_CFG_HOOKS];
	int nr_hooks;

	/* Set by the owner before the function is put on a bus. */
	pci_bar_remap_fn bar_remap;
	void *bar_remap_opaque;
	struct irq_line intx; /* raised while the device asserts INTx and INTx is not disabled */
	const char *name;

	int intx_level;	 /* what the device asks for */
	int intx_output; /* what the line was last set to */
};

/* Type 0 header with ids; no BARs, no capabilities, decoding off. */
void pci_function_init(struct pci_function *f, const struct pci_ids *ids, const char *name);
void pci_function_destroy(struct pci_function *f);

/*
 * Declares BAR bar (0..5; a 64-bit BAR also takes bar + 1) of size bytes, a power of two
 * >= 16. fn serves accesses while the BAR decodes (see pci_bus_mmio).
 */
int pci_add_bar(struct pci_function *f, int bar, uint64_t size, unsigned int flags,
		io_handler_fn fn, void *opaque, struct kerr *err);
/* Programs a BAR's address as firmware would; fires bar_remap if decoding changes. */
void pci_set_bar_addr(struct pci_function *f, int bar, uint64_t addr);
/* The address in the BAR registers, decoded or not. */
uint64_t pci_bar_addr(struct pci_function *f, int bar);
/* The address the BAR decodes now, or PCI_BAR_UNMAPPED. */
uint64_t pci_bar_mapped(const struct pci_function *f, int bar);

/*
 * Appends a capability. cap holds its len bytes including the id/next header, which is
 * overwritten; wmask (len bytes, may be NULL = read-only) says which bits guests may write.
 * Returns the capability's offset, or -1 when the 256-byte space is full.
 */
int pci_add_cap(struct pci_function *f, uint8_t id, const void *cap, size_t len, const void *wmask,
		struct kerr *err);
/* Offset of the first capability with this id, or 0. */
unsigned int pci_find_cap(struct pci_function *f, uint8_t id);
int pci_add_cfg_hook(struct pci_function *f, unsigned int start, unsigned int len,
		     pci_cfg_hook_fn fn, void *opaque, struct kerr *err);
/*
 * The same, but fn runs after f->lock was dropped, so it may take the device's own locks (a
 * window onto a BAR whose handlers do). It reaches config space through pci_cfg_get/set only.
 */
int pci_add_cfg_hook_unlocked(struct pci_function *f, unsigned int start, unsigned int len,
			      pci_cfg_hook_fn fn, void *opaque, struct kerr *err);

/*
 * Guest config cycles, 1, 2 or 4 bytes at any offset. Bytes at or past cfg_size read as ones
 * and ignore writes; so does an access of any other size.
 */
void pci_cfg_read(struct pci_function *f, unsigned int offset, uint8_t *data, unsigned int size);
void pci_cfg_write(struct pci_function *f, unsigned int offset, const uint8_t *data,
		   unsigned int size);
uint32_t pci_cfg_read_val(struct pci_function *f, unsigned int offset, unsigned int size);
void pci_cfg_write_val(struct pci_function *f, unsigned int offset, unsigned int size,
		       uint32_t val);

/* Raw bytes without masks, hooks or locking: for setup, and for hooks (which hold the lock). */
void pci_cfg_peek(const struct pci_function *f, unsigned int offset, void *buf, size_t len);
void pci_cfg_poke(struct pci_function *f, unsigned int offset, const void *buf, size_t len);
/* Raw bytes under f->lock: for unlocked hooks. */
void pci_cfg_get(struct pci_function *f, unsigned int offset, void *buf, size_t len);
void pci_cfg_set(struct pci_function *f, unsigned int offset, const void *buf, size_t len);

/* Device side: assert (1) or deassert (0) INTx; honours the command register's INTx disable. */
void pci_intx_set(struct pci_function *f, int level);
/* The guest let the function master the bus (DMA). */
bool pci_bus_master_enabled(struct pci_function *f);

struct pci_bus {
	uint32_t cf8; /* CONFIG_ADDRESS: one latch shared by all vCPUs, like the chipset's */
	uint8_t rcr;  /* reset control register at 0xCF9 */
	struct pci_function *slots[PCI_NR_SLOTS];
	struct pci_function host_bridge;
	/* Called when the guest sets RST_CPU in 0xCF9 (Linux reboot=pci); may be NULL. */
	void (*reset)(void *opaque);
	void *reset_opaque;
};

/* An empty bus 0 with the host bridge in slot 0. */
void pci_bus_init(struct pci_bus *bus);
void pci_bus_destroy(struct pci_bus *bus);
/* Puts f in slot (1..31), or the first free one if slot < 0. Returns the slot or -1. */
int pci_bus_add(struct pci_bus *bus, struct pci_function *f, int slot, struct kerr *err);

/* io_bus handlers; opaque is the bus. Register PCI_CF8_PORT/PCI_CF8_LEN, PCI_CFC_PORT/
 * PCI_CFC_LEN on the port bus and the ECAM window (1 MiB for bus 0) on the MMIO bus. */
void pci_cf8_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);
void pci_cfc_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);
void pci_ecam_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);

/* Forwards an MMIO access at guest address addr to the BAR decoding it; false if none does. */
bool pci_bus_mmio(struct pci_bus *bus, uint64_t addr, uint8_t *data, unsigned int size,
		  bool is_write);

/*
 * A range of guest addresses for BARs: a bump allocator with natural alignment, and an io_bus
 * handler for the whole range (opaque = the window) that forwards to pci_bus_mmio, so BARs can
 * move without touching the io_bus after the vCPUs start.
 */
struct pci_window {
	uint64_t base, size, next;
	struct pci_bus *bus;
};

void pci_window_init(struct pci_window *w, struct pci_bus *bus, uint64_t base, uint64_t size);
int pci_window_alloc(struct pci_window *w, uint64_t size, uint64_t *addr, struct kerr *err);
/* Gives every BAR of f an address: 64-bit BARs from w64 (or w32 when w64 is NULL). */
int pci_assign_bars(struct pci_function *f, struct pci_window *w32, struct pci_window *w64,
		    struct kerr *err);
void pci_window_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);

#endif
