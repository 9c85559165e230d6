/*
 * The ARM PrimeCell PL061 GPIO controller, as far as an arm64 guest's gpio-keys power key
 * needs it: eight lines whose input levels kestrel sets (pl061_set_input), edge or level
 * interrupts on them with the PL061's sense/event/mask registers, and the PrimeCell IDs.
 * Lines the guest drives as outputs just hold what it writes.
 *
 * Threads: vCPUs (registers) and the event loop (pl061_set_input); one mutex, a leaf. The
 * interrupt line is set with the mutex held: irq_line.set only writes to KVM.
 */
#ifndef KESTREL_PL061_H
#define KESTREL_PL061_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/irq.h"

#define PL061_SIZE 0x1000

struct pl061 {
	pthread_mutex_t lock;
	struct irq_line irq;
	uint8_t in;  /* levels kestrel drives on the lines */
	uint8_t out; /* what the guest wrote for lines it drives */
	uint8_t dir, is, ibe, iev, ie, ris, afsel;
	bool line; /* level of the interrupt output, to set it only on change */
};

void pl061_init(struct pl061 *g, struct irq_line irq);
void pl061_destroy(struct pl061 *g);
void pl061_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);
/* Drives input line n (0..7) to level; raises the interrupt the guest configured for it. */
void pl061_set_input(struct pl061 *g, unsigned int n, bool level);

#endif
