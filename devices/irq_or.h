/*
 * A level-triggered line that several sources drive, high while any of them asserts (a
 * wired-OR). PCI INTx pins share lines (slot % 8 on x86, slot % 4 on arm64), and KVM keeps
 * one level per line for userspace: without this, one function deasserting would drop the
 * line under another that still asserts, and that one's interrupt would be lost.
 */
#ifndef KESTREL_DEVICES_IRQ_OR_H
#define KESTREL_DEVICES_IRQ_OR_H

#include <pthread.h>
#include <stdint.h>

#include "devices/irq.h"

#define IRQ_OR_MAX_SOURCES 64

struct irq_or {
	/* Taken under the sources' own locks (a PCI function's f->lock); the line's set() (a
	 * KVM ioctl) runs under it so the line's level follows the order of the changes. */
	pthread_mutex_t lock;
	struct irq_line out;
	uint64_t asserted; /* a bit per source */
	unsigned int nr_sources;
};

void irq_or_init(struct irq_or *o, struct irq_line out);
void irq_or_destroy(struct irq_or *o);
/* A new source's line in *line; -1 once IRQ_OR_MAX_SOURCES are handed out. */
int irq_or_source(struct irq_or *o, struct irq_line *line);

#endif
