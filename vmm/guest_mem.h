/*
 * The guest's RAM and the only place that turns guest-physical addresses into host pointers.
 * Devices and loaders never do pointer arithmetic on guest addresses themselves: they ask for
 * a view of [gpa, gpa+len) and get NULL when any byte of it is outside RAM (overflow included).
 */
#ifndef KESTREL_GUEST_MEM_H
#define KESTREL_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"

#define GUEST_MEM_MAX_REGIONS 4

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_mem {
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
	int nr_regions;
	uint64_t ram_size; /* total bytes of RAM over all regions */
};

/* Maps anonymous host memory for each region the layout gives (gpa/size filled in, host NULL). */
int guest_mem_map(struct guest_mem *gm, const struct guest_mem_region *layout, int nr,
		  struct kerr *err);
void guest_mem_unmap(struct guest_mem *gm);

/* Host view of [gpa, gpa+len), or NULL if any byte lies outside one RAM region. len 0 is valid. */
void *guest_mem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* Copies into guest memory; returns false (and writes nothing) if the range is not all RAM. */
bool guest_mem_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);

/*
 * Copies the len bytes at src into guest RAM at gpa; the caller checked that the range is
 * RAM and still zero, as guest_mem_map left it. fd >= 0: src maps offset off of that file,
 * and the file's holes (zeros it does not store, found with SEEK_HOLE) are skipped: they cost
 * neither a copy nor a page of guest RAM until the guest touches them; a file that cannot
 * tell its holes is copied whole. -1 (err set): the range is not RAM.
 */
int guest_mem_place(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len, int fd,
		    uint64_t off, struct kerr *err);

#endif
