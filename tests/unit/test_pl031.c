/* The PL031 RTC (devices/pl031.c): the count, setting it, the PrimeCell IDs, bad accesses. */
#include <criterion/criterion.h>
#include <string.h>

#include "devices/pl031.h"

static time_t fake_now = 1700000000;

static time_t clock_fn(time_t *t)
{
	if (t)
		*t = fake_now;
	return fake_now;
}

static struct pl031 rtc;

static void setup(void)
{
	pl031_init(&rtc);
	rtc.now = clock_fn;
	fake_now = 1700000000;
}

static void teardown(void)
{
	pl031_destroy(&rtc);
}

TestSuite(pl031, .init = setup, .fini = teardown);

static uint32_t rd(uint64_t off)
{
	uint32_t v = 0xdeadbeef;

	pl031_io(&rtc, off, (uint8_t *)&v, 4, false);
	return v;
}

static void wr(uint64_t off, uint32_t v)
{
	pl031_io(&rtc, off, (uint8_t *)&v, 4, true);
}

Test(pl031, counts_host_seconds)
{
	cr_assert_eq(rd(0x00), 1700000000);
	fake_now += 5;
	cr_assert_eq(rd(0x00), 1700000005);
	cr_assert_eq(rd(0x0c), 1, "the clock runs from reset");
}

Test(pl031, a_load_sets_the_count_and_it_keeps_counting)
{
	wr(0x08, 1000);
	cr_assert_eq(rd(0x00), 1000);
	fake_now += 7;
	cr_assert_eq(rd(0x00), 1007);
	wr(0x00, 5); /* RTCDR is read-only */
	cr_assert_eq(rd(0x00), 1007);
}

Test(pl031, primecell_ids_match_the_amba_driver)
{
	static const uint32_t want[8] = {0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1};

	for (int i = 0; i < 8; i++)
		cr_assert_eq(rd(0xfe0 + 4 * i), want[i], "id %d", i);
}

Test(pl031, match_and_mask_hold_what_was_written_and_no_alarm_fires)
{
	wr(0x04, 1700000001);
	wr(0x10, 3);
	cr_assert_eq(rd(0x04), 1700000001);
	cr_assert_eq(rd(0x10), 1, "only the one interrupt bit");
	fake_now += 10;
	cr_assert_eq(rd(0x14), 0);
	cr_assert_eq(rd(0x18), 0);
}

Test(pl031, odd_accesses_read_zero_and_change_nothing)
{
	uint8_t b[8];

	memset(b, 0xff, sizeof(b));
	pl031_io(&rtc, 0x00, b, 1, false);
	cr_assert_eq(b[0], 0);
	memset(b, 0xff, sizeof(b));
	pl031_io(&rtc, 0x02, b, 4, false);
	cr_assert_eq(b[0] | b[1] | b[2] | b[3], 0);
	pl031_io(&rtc, 0x08, b, 8, true);
	cr_assert_eq(rd(0x00), 1700000000, "an 8-byte load is ignored");
	cr_assert_eq(rd(0x1000), 0, "outside the window");
	cr_assert_eq(rd(0x800), 0, "reserved space");
}
