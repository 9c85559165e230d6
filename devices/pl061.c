#include "devices/pl061.h"

#include <string.h>

/* Registers (PL061 TRM, DDI 0190). GPIODATA is 256 words: address bits [9:2] mask the lines. */
#define GPIODATA_END 0x400
#define GPIODIR 0x400 /* 1: output */
#define GPIOIS 0x404  /* interrupt sense, 1: level */
#define GPIOIBE 0x408 /* both edges */
#define GPIOIEV 0x40c /* event, 1: rising edge or high level */
#define GPIOIE 0x410  /* interrupt mask, 1: enabled */
#define GPIORIS 0x414
#define GPIOMIS 0x418
#define GPIOIC 0x41c
#define GPIOAFSEL 0x420
#define PERIPH_ID 0xfe0

/* PeriphID0..3 then PCellID0..3: part 0x061, designer ARM, rev 1. */
static const uint8_t ids[8] = {0x61, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1};

void pl061_init(struct pl061 *g, struct irq_line irq)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	g->irq = irq;
}

void pl061_destroy(struct pl061 *g)
{
	pthread_mutex_destroy(&g->lock);
}

static uint8_t levels(const struct pl061 *g)
{
	return (uint8_t)((g->out & g->dir) | (g->in & ~g->dir));
}

/* Level-sensitive lines latch their state continuously; then the output follows MIS. */
static void update(struct pl061 *g)
{
	uint8_t lvl = levels(g), level_hit = (uint8_t)(g->is & ~(lvl ^ g->iev));
	bool line;

	g->ris = (uint8_t)((g->ris & ~g->is) | level_hit);
	line = (g->ris & g->ie) != 0;
	if (line != g->line) {
		g->line = line;
		irq_line_set(&g->irq, line);
	}
}

/* Edges from old to new levels latch into RIS on edge-sensitive lines. */
static void edges(struct pl061 *g, uint8_t old)
{
	uint8_t now = levels(g), rise = (uint8_t)(now & ~old), fall = (uint8_t)(old & ~now);
	uint8_t hit = (uint8_t)((rise | fall) & g->ibe) |
		      (uint8_t)(~g->ibe & ((rise & g->iev) | (fall & ~g->iev)));

	g->ris |= (uint8_t)(hit & ~g->is);
}

static uint32_t read_reg(struct pl061 *g, uint64_t off)
{
	if (off < GPIODATA_END)
		return levels(g) & (uint8_t)(off >> 2);
	if (off >= PERIPH_ID && off < PERIPH_ID + 4 * sizeof(ids))
		return ids[(off - PERIPH_ID) / 4];
	switch (off) {
	case GPIODIR:
		return g->dir;
	case GPIOIS:
		return g->is;
	case GPIOIBE:
		return g->ibe;
	case GPIOIEV:
		return g->iev;
	case GPIOIE:
		return g->ie;
	case GPIORIS:
		return g->ris;
	case GPIOMIS:
		return g->ris & g->ie;
	case GPIOAFSEL:
		return g->afsel;
	default:
		return 0;
	}
}

static void write_reg(struct pl061 *g, uint64_t off, uint8_t v)
{
	uint8_t old = levels(g);

	if (off < GPIODATA_END) {
		uint8_t mask = (uint8_t)(off >> 2);
		g->out = (uint8_t)((g->out & ~mask) | (v & mask));
	} else {
		switch (off) {
		case GPIODIR:
			g->dir = v;
			break;
		case GPIOIS:
			g->is = v;
			break;
		case GPIOIBE:
			g->ibe = v;
			break;
		case GPIOIEV:
			g->iev = v;
			break;
		case GPIOIE:
			g->ie = v;
			break;
		case GPIOIC:
			g->ris &= (uint8_t)~v;
			break;
		case GPIOAFSEL:
			g->afsel = v;
			break;
		default: /* RIS, MIS and the IDs are read-only */
			break;
		}
	}
	edges(g, old);
	update(g);
}

/*
 * Registers are 32 bits wide (8 bits used) and aligned. Linux's gpio-pl061 reads and writes
 * them with byte accesses (readb/writeb), the AMBA bus reads the IDs with 32-bit ones: both
 * widths work; others (16-bit, unaligned) read 0 and write nothing.
 */
void pl061_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct pl061 *g = opaque;
	uint32_t v = 0;

	if ((size != 1 && size != 4) || (offset & 3) || offset >= PL061_SIZE) {
		if (!is_write)
			memset(data, 0, size);
		return;
	}
	pthread_mutex_lock(&g->lock);
	if (is_write) {
		memcpy(&v, data, size);
		write_reg(g, offset, (uint8_t)v);
	} else {
		v = read_reg(g, offset);
		memcpy(data, &v, size); /* little-endian: the low byte first */
	}
	pthread_mutex_unlock(&g->lock);
}

void pl061_set_input(struct pl061 *g, unsigned int n, bool level)
{
	uint8_t old, bit = (uint8_t)(1u << (n & 7));

	pthread_mutex_lock(&g->lock);
	old = levels(g);
	g->in = level ? (uint8_t)(g->in | bit) : (uint8_t)(g->in & ~bit);
	edges(g, old);
	update(g);
	pthread_mutex_unlock(&g->lock);
}
