#include "vmm/io_bus.h"

#include <string.h>

int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, io_handler_fn fn, void *opaque,
		    const char *name, struct kerr *err)
{
	if (len == 0 || base + len < base)
		return kerr_set(err, "device %s: empty or wrapping I/O range", name);
	if (bus->nr == IO_BUS_MAX_RANGES)
		return kerr_set(err, "device %s: too many I/O ranges", name);
	for (int i = 0; i < bus->nr; i++) {
		const struct io_range *r = &bus->ranges[i];
		if (base < r->base + r->len && r->base < base + len)
			return kerr_set(err, "device %s overlaps %s at 0x%llx", name, r->name,
					(unsigned long long)r->base);
	}
	bus->ranges[bus->nr++] = (struct io_range){base, len, fn, opaque, name};
	return 0;
}

bool io_bus_dispatch(struct io_bus *bus, uint64_t addr, uint8_t *data, unsigned int size,
		     bool is_write)
{
	for (int i = 0; i < bus->nr; i++) {
		const struct io_range *r = &bus->ranges[i];
		if (addr >= r->base && addr - r->base < r->len) {
			r->fn(r->opaque, addr - r->base, data, size, is_write);
			return true;
		}
	}
	__atomic_fetch_add(&bus->unhandled, 1, __ATOMIC_RELAXED);
	if (!is_write)
		memset(data, 0xff, size);
	return false;
}
