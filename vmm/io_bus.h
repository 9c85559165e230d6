/*
 * Port-I/O and MMIO dispatch. Devices register address ranges before the vCPUs start; after
 * that the bus is read-only, so vCPU threads look up handlers without a lock. Each device
 * serialises its own state.
 */
#ifndef KESTREL_IO_BUS_H
#define KESTREL_IO_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/error.h"

/* data holds size bytes (1, 2, 4 or 8) in guest byte order; offset is from the range base. */
typedef void (*io_handler_fn)(void *opaque, uint64_t offset, uint8_t *data, unsigned int size,
			      bool is_write);

struct io_range {
	uint64_t base;
	uint64_t len;
	io_handler_fn fn;
	void *opaque;
	const char *name;
};

#define IO_BUS_MAX_RANGES 64

struct io_bus {
	struct io_range ranges[IO_BUS_MAX_RANGES];
	int nr;
	uint64_t unhandled; /* accesses no device claimed: counted, reads return all ones */
};

int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, io_handler_fn fn, void *opaque,
		    const char *name, struct kerr *err);

/* Returns true if a device handled the access. Unclaimed reads fill data with 0xff. */
bool io_bus_dispatch(struct io_bus *bus, uint64_t addr, uint8_t *data, unsigned int size,
		     bool is_write);

#endif
