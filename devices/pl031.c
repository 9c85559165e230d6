#include "devices/pl031.h"

#include <string.h>

/* Registers (PL031 TRM, DDI 0224). */
#define RTCDR 0x00   /* data: the current count, read-only */
#define RTCMR 0x04   /* match */
#define RTCLR 0x08   /* load: sets the count */
#define RTCCR 0x0c   /* control: bit 0 starts the clock (it always runs here) */
#define RTCIMSC 0x10 /* interrupt mask */
#define RTCRIS 0x14  /* raw interrupt status */
#define RTCMIS 0x18  /* masked interrupt status */
#define RTCICR 0x1c  /* interrupt clear */
#define PERIPH_ID 0xfe0

/* PeriphID0..3 then PCellID0..3, one byte per word: part 0x031, designer ARM, rev 1. */
static const uint8_t ids[8] = {0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1};

void pl031_init(struct pl031 *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->control = 1;
	r->now = time;
}

void pl031_destroy(struct pl031 *r)
{
	pthread_mutex_destroy(&r->lock);
}

static uint32_t read_reg(struct pl031 *r, uint64_t off)
{
	if (off >= PERIPH_ID && off < PERIPH_ID + 4 * sizeof(ids))
		return ids[(off - PERIPH_ID) / 4];
	switch (off) {
	case RTCDR:
		return (uint32_t)(r->now(NULL) + r->offset);
	case RTCMR:
		return r->match;
	case RTCLR:
		return (uint32_t)(r->now(NULL) + r->offset);
	case RTCCR:
		return r->control;
	case RTCIMSC:
		return r->imsc;
	default: /* RTCRIS, RTCMIS: no alarm ever fires; reserved space reads 0 */
		return 0;
	}
}

static void write_reg(struct pl031 *r, uint64_t off, uint32_t v)
{
	switch (off) {
	case RTCMR:
		r->match = v;
		break;
	case RTCLR: /* the count is 32 bits: the guest's time modulo 2^32 from now on */
		r->offset = (int64_t)v - (int64_t)(uint32_t)r->now(NULL);
		break;
	case RTCCR:
		r->control |= v & 1; /* writing 0 does not stop it (TRM: only a reset does) */
		break;
	case RTCIMSC:
		r->imsc = v & 1;
		break;
	default: /* RTCDR and the IDs are read-only; RTCICR clears nothing that is set */
		break;
	}
}

/* Registers are 32 bits wide and aligned; other accesses read 0 and write nothing. */
void pl031_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct pl031 *r = opaque;
	uint32_t v = 0;

	if (size != 4 || (offset & 3) || offset >= PL031_SIZE) {
		if (!is_write)
			memset(data, 0, size);
		return;
	}
	pthread_mutex_lock(&r->lock);
	if (is_write) {
		memcpy(&v, data, 4);
		write_reg(r, offset, v);
	} else {
		v = read_reg(r, offset);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&r->lock);
}
