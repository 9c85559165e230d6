/* The CMOS RTC: time registers in BCD and binary, status registers, and CMOS RAM. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "devices/cmos_rtc.h"

/* 2026-11-22 13:45:07 UTC, a Sunday. */
#define T_2026 ((time_t)1795355107)
/* 1999-12-31 23:59:59 UTC, a Friday. */
#define T_1999 ((time_t)946684799)

static time_t fixed_time = T_2026;

static time_t fake_now(time_t *t)
{
	if (t)
		*t = fixed_time;
	return fixed_time;
}

static struct cmos_rtc r;

static void setup(void)
{
	fixed_time = T_2026;
	cmos_rtc_init(&r);
	r.now = fake_now;
}

static void teardown(void)
{
	cmos_rtc_destroy(&r);
}

TestSuite(cmos_rtc, .init = setup, .fini = teardown);

static uint8_t cmos_read(uint8_t index)
{
	uint8_t d = index;

	cmos_rtc_io(&r, 0, &d, 1, true);
	d = 0xee;
	cmos_rtc_io(&r, 1, &d, 1, false);
	return d;
}

static void cmos_write(uint8_t index, uint8_t v)
{
	uint8_t d = index;

	cmos_rtc_io(&r, 0, &d, 1, true);
	d = v;
	cmos_rtc_io(&r, 1, &d, 1, true);
}

Test(cmos_rtc, bcd_time)
{
	cr_assert_eq(cmos_read(0x00), 0x07, "seconds");
	cr_assert_eq(cmos_read(0x02), 0x45, "minutes");
	cr_assert_eq(cmos_read(0x04), 0x13, "hours");
	cr_assert_eq(cmos_read(0x06), 0x01, "weekday (Sunday = 1)");
	cr_assert_eq(cmos_read(0x07), 0x22, "day of month");
	cr_assert_eq(cmos_read(0x08), 0x11, "month");
	cr_assert_eq(cmos_read(0x09), 0x26, "year");
	cr_assert_eq(cmos_read(0x32), 0x20, "century");
}

Test(cmos_rtc, bcd_time_1999)
{
	fixed_time = T_1999;
	cr_assert_eq(cmos_read(0x00), 0x59);
	cr_assert_eq(cmos_read(0x02), 0x59);
	cr_assert_eq(cmos_read(0x04), 0x23);
	cr_assert_eq(cmos_read(0x06), 0x06, "Friday = 6");
	cr_assert_eq(cmos_read(0x07), 0x31);
	cr_assert_eq(cmos_read(0x08), 0x12);
	cr_assert_eq(cmos_read(0x09), 0x99);
	cr_assert_eq(cmos_read(0x32), 0x19);
}

Test(cmos_rtc, binary_mode)
{
	uint8_t b = cmos_read(0x0b);

	cr_assert_eq(b & 0x04, 0, "BCD by default");
	cr_assert_eq(b & 0x02, 0x02, "24-hour mode by default");
	cmos_write(0x0b, 0x06);
	cr_assert_eq(cmos_read(0x0b) & 0x06, 0x06);
	cr_assert_eq(cmos_read(0x00), 7);
	cr_assert_eq(cmos_read(0x02), 45);
	cr_assert_eq(cmos_read(0x04), 13);
	cr_assert_eq(cmos_read(0x07), 22);
	cr_assert_eq(cmos_read(0x08), 11);
	cr_assert_eq(cmos_read(0x09), 26);
	cr_assert_eq(cmos_read(0x32), 20);
	/* And back to BCD. */
	cmos_write(0x0b, 0x02);
	cr_assert_eq(cmos_read(0x04), 0x13);
}

Test(cmos_rtc, follows_the_clock)
{
	cr_assert_eq(cmos_read(0x00), 0x07);
	fixed_time = T_2026 + 10;
	cr_assert_eq(cmos_read(0x00), 0x17);
	fixed_time = T_2026 + 60;
	cr_assert_eq(cmos_read(0x02), 0x46);
}

Test(cmos_rtc, time_writes_ignored)
{
	cmos_write(0x00, 0x30);
	cmos_write(0x04, 0x01);
	cmos_write(0x09, 0x77);
	cmos_write(0x32, 0x05);
	cr_assert_eq(cmos_read(0x00), 0x07);
	cr_assert_eq(cmos_read(0x04), 0x13);
	cr_assert_eq(cmos_read(0x09), 0x26);
	cr_assert_eq(cmos_read(0x32), 0x20);
}

Test(cmos_rtc, status_registers)
{
	cr_assert_eq(cmos_read(0x0a) & 0x80, 0, "UIP set: Linux would spin");
	cr_assert_eq(cmos_read(0x0a) & 0x70, 0x20, "32.768 kHz time base");
	cr_assert_eq(cmos_read(0x0d) & 0x80, 0x80, "VRT (valid RAM and time) clear");
	cr_assert_eq(cmos_read(0x0c), 0x00, "no interrupt flags");
	/* A/C/D are not writable from the guest. */
	cmos_write(0x0a, 0x80);
	cmos_write(0x0d, 0x00);
	cr_assert_eq(cmos_read(0x0a) & 0x80, 0);
	cr_assert_eq(cmos_read(0x0d) & 0x80, 0x80);
	/* REG_B ignores SET (bit 7) so the clock never stops. */
	cmos_write(0x0b, 0x82);
	cr_assert_eq(cmos_read(0x0b) & 0x80, 0);
}

Test(cmos_rtc, cmos_ram)
{
	for (unsigned int i = 0x0e; i < 0x80; i++)
		if (i != 0x32)
			cmos_write((uint8_t)i, (uint8_t)(i ^ 0x5a));
	for (unsigned int i = 0x0e; i < 0x80; i++)
		if (i != 0x32)
			cr_assert_eq(cmos_read((uint8_t)i), (uint8_t)(i ^ 0x5a), "byte 0x%02x", i);
}

Test(cmos_rtc, index_nmi_bit_and_port_reads)
{
	uint8_t d;

	cmos_write(0x40, 0xab);
	/* Bit 7 of the index (NMI disable) selects the same register. */
	cr_assert_eq(cmos_read(0x80 | 0x40), 0xab);
	cr_assert_eq(cmos_read(0x80 | 0x00), 0x07);
	d = 0;
	cmos_rtc_io(&r, 0, &d, 1, false);
	cr_assert_eq(d, 0xff, "index port reads all ones");

	uint8_t w[4] = {0xaa, 0xbb, 0xcc, 0xdd};
	d = 0x09;
	cmos_rtc_io(&r, 0, &d, 1, true);
	cmos_rtc_io(&r, 1, w, 4, false);
	cr_assert_eq(w[0], 0x26);
	cr_assert_eq(w[1] | w[2] | w[3], 0);
}

Test(cmos_rtc, default_clock_is_host_time)
{
	struct cmos_rtc real;
	uint8_t d = 0x09;

	cmos_rtc_init(&real);
	cr_assert_eq(real.now, time);
	cmos_rtc_io(&real, 0, &d, 1, true);
	cmos_rtc_io(&real, 1, &d, 1, false);
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	int y = tm.tm_year % 100;
	cr_assert_eq(d, ((y / 10) << 4) | (y % 10));
	cmos_rtc_destroy(&real);
}
