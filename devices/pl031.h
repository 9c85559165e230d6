/*
 * The ARM PrimeCell PL031 real-time clock, as arm64 guests find it in the device tree: a
 * seconds counter (the host's UTC time plus what the guest set) and the PrimeCell ID registers
 * Linux's AMBA bus matches the driver by. The match interrupt is not raised (no alarm); its
 * registers hold what the guest writes.
 *
 * Threads: any vCPU; one mutex, a leaf.
 */
#ifndef KESTREL_PL031_H
#define KESTREL_PL031_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define PL031_SIZE 0x1000

struct pl031 {
	pthread_mutex_t lock;
	int64_t offset; /* guest time - host time, seconds */
	uint32_t match, imsc, control;
	time_t (*now)(time_t *); /* the clock; tests substitute a fixed one */
};

void pl031_init(struct pl031 *r);
void pl031_destroy(struct pl031 *r);
void pl031_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);

#endif
