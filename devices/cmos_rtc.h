/*
 * The MC146818 CMOS real-time clock at ports 0x70/0x71: the host's UTC time, and 128 bytes of
 * CMOS RAM. Without it Linux's rtc_cmos driver spends seconds probing a missing chip.
 */
#ifndef KESTREL_CMOS_RTC_H
#define KESTREL_CMOS_RTC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define CMOS_RTC_PORT 0x70
#define CMOS_RTC_LEN 2

struct cmos_rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t ram[128];
	time_t (*now)(time_t *); /* the clock; tests substitute a fixed one */
};

void cmos_rtc_init(struct cmos_rtc *r);
void cmos_rtc_destroy(struct cmos_rtc *r);
void cmos_rtc_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);

#endif
