#include "devices/cmos_rtc.h"

#include <string.h>

enum {
	REG_SECONDS = 0x00,
	REG_MINUTES = 0x02,
	REG_HOURS = 0x04,
	REG_WEEKDAY = 0x06,
	REG_DAY = 0x07,
	REG_MONTH = 0x08,
	REG_YEAR = 0x09,
	REG_A = 0x0a,
	REG_B = 0x0b,
	REG_C = 0x0c,
	REG_D = 0x0d,
	REG_CENTURY = 0x32,
};
#define REG_A_DEFAULT 0x26 /* 32.768 kHz time base, 1024 Hz rate; UIP always clear */
#define REG_B_24H 0x02
#define REG_B_BINARY 0x04
#define REG_D_VALID 0x80

void cmos_rtc_init(struct cmos_rtc *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->now = time;
	r->ram[REG_A] = REG_A_DEFAULT;
	r->ram[REG_B] = REG_B_24H;
	r->ram[REG_D] = REG_D_VALID;
}

void cmos_rtc_destroy(struct cmos_rtc *r)
{
	pthread_mutex_destroy(&r->lock);
}

static uint8_t encode(const struct cmos_rtc *r, int v)
{
	if (r->ram[REG_B] & REG_B_BINARY)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static uint8_t rtc_read(struct cmos_rtc *r, uint8_t reg)
{
	time_t t = r->now(NULL);
	struct tm tm;

	if (!gmtime_r(&t, &tm))
		memset(&tm, 0, sizeof(tm));
	switch (reg) {
	case REG_SECONDS:
		return encode(r, tm.tm_sec);
	case REG_MINUTES:
		return encode(r, tm.tm_min);
	case REG_HOURS:
		return encode(r, tm.tm_hour);
	case REG_WEEKDAY:
		return encode(r, tm.tm_wday + 1);
	case REG_DAY:
		return encode(r, tm.tm_mday);
	case REG_MONTH:
		return encode(r, tm.tm_mon + 1);
	case REG_YEAR:
		return encode(r, tm.tm_year % 100);
	case REG_CENTURY:
		return encode(r, (tm.tm_year + 1900) / 100);
	default:
		return r->ram[reg];
	}
}

void cmos_rtc_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct cmos_rtc *r = opaque;

	pthread_mutex_lock(&r->lock);
	if (offset == 0) {
		/* Bit 7 of the index port masks NMIs on a PC; only the index matters here. */
		if (is_write)
			r->index = data[0] & 0x7f;
		else
			memset(data, 0xff, size);
	} else if (is_write) {
		/* The time registers follow the host clock; setting them is ignored. */
		if (r->index == REG_B)
			r->ram[REG_B] = data[0] & (REG_B_24H | REG_B_BINARY | 0x70);
		else if (r->index > REG_D && r->index != REG_CENTURY)
			r->ram[r->index] = data[0];
	} else {
		memset(data, 0, size);
		data[0] = rtc_read(r, r->index);
	}
	pthread_mutex_unlock(&r->lock);
}
