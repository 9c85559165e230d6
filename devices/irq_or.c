/* Wired-OR of level interrupt sources onto one line (irq_or.h says why). */
#include "devices/irq_or.h"

#include <stdbool.h>

static void source_set(void *opaque, unsigned int bit, int level)
{
	struct irq_or *o = opaque;
	uint64_t mask = 1ULL << bit;

	pthread_mutex_lock(&o->lock);
	bool was = o->asserted != 0;
	if (level)
		o->asserted |= mask;
	else
		o->asserted &= ~mask;
	bool now = o->asserted != 0;
	if (now != was)
		irq_line_set(&o->out, now);
	pthread_mutex_unlock(&o->lock);
}

void irq_or_init(struct irq_or *o, struct irq_line out)
{
	pthread_mutex_init(&o->lock, NULL);
	o->out = out;
	o->asserted = 0;
	o->nr_sources = 0;
}

void irq_or_destroy(struct irq_or *o)
{
	pthread_mutex_destroy(&o->lock);
}

int irq_or_source(struct irq_or *o, struct irq_line *line)
{
	if (o->nr_sources >= IRQ_OR_MAX_SOURCES)
		return -1;
	*line = (struct irq_line){source_set, o, o->nr_sources++};
	return 0;
}
