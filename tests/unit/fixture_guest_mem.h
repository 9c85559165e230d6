/* A fake guest RAM for the device tests: one region at guest address 0, and its host view. */
#pragma once

#include <stdint.h>

#include "vmm/guest_mem.h"

#define MiB (1ULL << 20)

extern struct guest_mem gm;

/* Maps size bytes of RAM at guest address 0 (a failed map fails the test). */
void fx_guest_mem_map(uint64_t size);
void fx_guest_mem_unmap(void);
/* The host address of a guest address in that one region; no bounds check. */
uint8_t *host(uint64_t gpa);
