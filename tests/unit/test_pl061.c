/* The PL061 GPIO (devices/pl061.c) driven the way Linux's gpio-keys + gpio-pl061 drive it. */
#include <criterion/criterion.h>
#include <string.h>

#include "devices/pl061.h"

static struct pl061 gpio;
static int level = -1, changes;

static void set_irq(void *opaque, unsigned int irq, int l)
{
	(void)opaque, (void)irq;
	level = l;
	changes++;
}

static void setup(void)
{
	pl061_init(&gpio, (struct irq_line){set_irq, NULL, 3});
	level = -1;
	changes = 0;
}

static void teardown(void)
{
	pl061_destroy(&gpio);
}

TestSuite(pl061, .init = setup, .fini = teardown);

static uint32_t rd(uint64_t off)
{
	uint32_t v = 0xdeadbeef;

	pl061_io(&gpio, off, (uint8_t *)&v, 4, false);
	return v;
}

static void wr(uint64_t off, uint32_t v)
{
	pl061_io(&gpio, off, (uint8_t *)&v, 4, true);
}

/* Linux's gpio-pl061 uses byte accesses (readb/writeb) for every register. */
static uint8_t rdb(uint64_t off)
{
	uint8_t v = 0xee;

	pl061_io(&gpio, off, &v, 1, false);
	return v;
}

static void wrb(uint64_t off, uint8_t v)
{
	pl061_io(&gpio, off, &v, 1, true);
}

#define KEY (1u << 3)

/* gpio-keys on line 3 as Linux sets it up: input, both edges, unmasked, all by bytes. */
static void key_setup(void)
{
	wrb(0x400, 0);	 /* DIR: all inputs */
	wrb(0x404, 0);	 /* IS: edge */
	wrb(0x408, KEY); /* IBE: both edges */
	wrb(0x410, KEY); /* IE */
}

Test(pl061, a_key_press_and_release_each_interrupt_once)
{
	key_setup();
	cr_assert_eq(changes, 0, "nothing pending after set-up");
	pl061_set_input(&gpio, 3, true);
	cr_assert_eq(level, 1);
	cr_assert_eq(rd(0x418), KEY, "MIS");
	cr_assert_eq(rdb(0x418), KEY, "MIS, read as Linux reads it");
	cr_assert_eq(rdb(0x410), KEY, "IE, written and read by bytes");
	cr_assert_eq(rdb(0x419), 0, "a byte off the register's start reads 0");
	cr_assert_eq(rd(KEY << 2), KEY, "the data register, masked by address, reads the key");
	cr_assert_eq(rd(0x3fc), KEY);
	cr_assert_eq(rd(0x3f8 & ~(KEY << 2)), 0, "a mask without the line reads 0");
	wrb(0x41c, KEY); /* IC */
	cr_assert_eq(level, 0);
	pl061_set_input(&gpio, 3, true);
	cr_assert_eq(level, 0, "no edge, no interrupt");
	pl061_set_input(&gpio, 3, false);
	cr_assert_eq(level, 1, "the release is an edge too");
	cr_assert_eq(rd(KEY << 2), 0);
}

Test(pl061, masked_and_single_edge_and_level_lines)
{
	wr(0x40c, KEY); /* IEV: rising edges only */
	wr(0x410, 0);	/* everything masked */
	pl061_set_input(&gpio, 3, true);
	cr_assert_eq(changes, 0);
	cr_assert_eq(rd(0x414), KEY, "RIS latches even while masked");
	wr(0x410, KEY);
	cr_assert_eq(level, 1, "unmasking a latched edge interrupts");
	wr(0x41c, KEY);
	cr_assert_eq(level, 0);

	/* Rising edge only: the release does not interrupt. */
	pl061_set_input(&gpio, 3, false);
	cr_assert_eq(level, 0);
	pl061_set_input(&gpio, 3, true);
	cr_assert_eq(level, 1);
	wr(0x41c, KEY);

	/* Level-sensitive, active high: stays pending while the line is high, IC or not. */
	wr(0x404, KEY);
	cr_assert_eq(level, 1);
	wr(0x41c, KEY);
	cr_assert_eq(level, 1);
	pl061_set_input(&gpio, 3, false);
	cr_assert_eq(level, 0);

	/* The reset state: falling edges only, so a press alone does not interrupt. */
	wr(0x404, 0);
	wr(0x40c, 0);
	pl061_set_input(&gpio, 3, true);
	cr_assert_eq(level, 0);
	pl061_set_input(&gpio, 3, false);
	cr_assert_eq(level, 1);
}

Test(pl061, outputs_hold_what_the_guest_writes_and_ids_match)
{
	static const uint32_t want[8] = {0x61, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1};

	wr(0x400, 0x81);
	wr(0x3fc, 0xff);
	cr_assert_eq(rd(0x3fc), 0x81, "only output lines take the write");
	wr(0x1 << 2, 0); /* masked write: line 0 only */
	cr_assert_eq(rd(0x3fc), 0x80);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(rd(0xfe0 + 4 * i), want[i]);
	uint8_t b[2] = {0xff, 0xff};
	pl061_io(&gpio, 0x400, b, 2, false);
	cr_assert_eq(b[0] | b[1], 0, "16-bit reads are refused");
	cr_assert_eq(rd(0x1000), 0);
}
