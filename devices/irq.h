/* How a device raises its interrupt line without knowing who wires it. */
#ifndef KESTREL_DEVICES_IRQ_H
#define KESTREL_DEVICES_IRQ_H

struct irq_line {
	void (*set)(void *opaque, unsigned int irq, int level);
	void *opaque;
	unsigned int irq;
};

static inline void irq_line_set(const struct irq_line *l, int level)
{
	if (l->set)
		l->set(l->opaque, l->irq, level);
}

#endif
