/*
 * MSI-X: the capability in config space, the vector table and the pending bit array. Where
 * the table and PBA sit in a BAR is the transport's business: its BAR handler forwards the
 * table's and PBA's ranges to msix_table_io and msix_pba_io. Interrupts leave through the
 * fire callback (the VMM writes the vector's irqfd); the VMM keeps KVM's GSI routes in step
 * through vector_changed.
 */
#ifndef KESTREL_DEVICES_MSIX_H
#define KESTREL_DEVICES_MSIX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci.h"
#include "vmm/error.h"

#define MSIX_MAX_VECTORS 2048

/* Bytes the table and the PBA take in their BARs for n vectors. */
#define MSIX_TABLE_SIZE(n) ((uint64_t)(n)*16)
#define MSIX_PBA_SIZE(n) ((((uint64_t)(n) + 63) / 64) * 8)

/* Both run with the msix lock (and, from config writes, the function's lock) held: they must
 * not call back into msix_* or pci_cfg_* for this function. */
struct msix_ops {
	/* Deliver the message now. */
	void (*fire)(void *opaque, unsigned int vector, uint64_t addr, uint32_t data);
	/*
	 * A vector's address/data or its effective mask (vector mask, function mask, or MSI-X
	 * disabled) changed. Called before any pending message is fired on unmask.
	 */
	void (*vector_changed)(void *opaque, unsigned int vector, uint64_t addr, uint32_t data,
			       bool masked);
	void *opaque;
};

struct msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

struct msix {
	pthread_mutex_t lock; /* vCPU threads (table, capability) vs. device threads (notify) */
	unsigned int nr;
	struct msix_entry *table;
	uint64_t *pba;
	bool enabled, func_masked;
	unsigned int cap; /* offset in config space; 0 until msix_add_cap */
	struct msix_ops ops;
};

/* nr_vectors in 1..MSIX_MAX_VECTORS; every vector starts masked. */
int msix_init(struct msix *m, unsigned int nr_vectors, const struct msix_ops *ops,
	      struct kerr *err);
void msix_destroy(struct msix *m);

/*
 * Adds the capability to f: table at table_off in BAR table_bar, PBA at pba_off in BAR pba_bar
 * (offsets 8-byte aligned). Guest writes to its message control reach m through a config hook.
 * Returns the capability's offset or -1.
 */
int msix_add_cap(struct msix *m, struct pci_function *f, int table_bar, uint32_t table_off,
		 int pba_bar, uint32_t pba_off, struct kerr *err);

/* io_bus-style handlers; opaque is the msix, offset is from the start of the table / PBA.
 * Table: 4- or 8-byte aligned accesses; anything else, or past the end, reads ones and is
 * ignored on write. PBA: read-only. */
void msix_table_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);
void msix_pba_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);

/*
 * Raises vector. Returns false when MSI-X is disabled, so the caller uses INTx instead.
 * Otherwise returns true: the message was fired, or left pending because the vector or the
 * function is masked, or dropped because vector is out of range (VIRTIO_MSI_NO_VECTOR).
 */
bool msix_notify(struct msix *m, unsigned int vector);
bool msix_enabled(struct msix *m);

#endif
