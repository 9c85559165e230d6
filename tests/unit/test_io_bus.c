/* The PIO/MMIO bus: registration rules and dispatch by offset. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "vmm/io_bus.h"

struct fake_dev {
	int calls;
	uint64_t offset;
	unsigned int size;
	bool is_write;
	uint8_t written[8];
	uint8_t reply;
};

static void fake_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct fake_dev *d = opaque;

	d->calls++;
	d->offset = offset;
	d->size = size;
	d->is_write = is_write;
	if (is_write)
		memcpy(d->written, data, size);
	else
		memset(data, d->reply, size);
}

static struct io_bus bus;

static void setup(void)
{
	memset(&bus, 0, sizeof(bus));
}

TestSuite(io_bus, .init = setup);

static void reg_ok(uint64_t base, uint64_t len, struct fake_dev *d, const char *name)
{
	struct kerr err = {{0}};

	cr_assert_eq(io_bus_register(&bus, base, len, fake_io, d, name, &err), 0,
		     "%s at 0x%llx+0x%llx: %s", name, (unsigned long long)base,
		     (unsigned long long)len, err.msg);
}

static void reg_bad(uint64_t base, uint64_t len, const char *name, const char *want)
{
	struct kerr err = {{0}};
	struct fake_dev dummy = {0};
	int nr = bus.nr;

	cr_assert_eq(io_bus_register(&bus, base, len, fake_io, &dummy, name, &err), -1,
		     "%s at 0x%llx+0x%llx accepted", name, (unsigned long long)base,
		     (unsigned long long)len);
	cr_assert_eq(bus.nr, nr, "a rejected range was added");
	cr_assert_null(strchr(err.msg, '\n'));
	cr_assert_not_null(strstr(err.msg, name), "message '%s' does not name %s", err.msg, name);
	if (want)
		cr_assert_not_null(strstr(err.msg, want), "message '%s' lacks '%s'", err.msg, want);
}

Test(io_bus, dispatch_by_offset)
{
	struct fake_dev uart = {.reply = 0x11}, rtc = {.reply = 0x22};
	uint8_t data[4];

	reg_ok(0x3f8, 8, &uart, "uart");
	reg_ok(0x70, 2, &rtc, "rtc");

	data[0] = 'A';
	cr_assert(io_bus_dispatch(&bus, 0x3f8, data, 1, true));
	cr_assert_eq(uart.calls, 1);
	cr_assert_eq(uart.offset, 0);
	cr_assert(uart.is_write);
	cr_assert_eq(uart.written[0], 'A');
	cr_assert_eq(rtc.calls, 0);

	cr_assert(io_bus_dispatch(&bus, 0x3fd, data, 1, false));
	cr_assert_eq(uart.calls, 2);
	cr_assert_eq(uart.offset, 5);
	cr_assert(!uart.is_write);
	cr_assert_eq(data[0], 0x11);

	/* Last byte of the range. */
	cr_assert(io_bus_dispatch(&bus, 0x3ff, data, 1, false));
	cr_assert_eq(uart.offset, 7);

	cr_assert(io_bus_dispatch(&bus, 0x71, data, 4, false));
	cr_assert_eq(rtc.calls, 1);
	cr_assert_eq(rtc.offset, 1);
	cr_assert_eq(rtc.size, 4);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(data[i], 0x22);
	cr_assert_eq(bus.unhandled, 0);
}

Test(io_bus, just_outside_ranges_unclaimed)
{
	struct fake_dev d = {.reply = 0};
	uint8_t data[8];

	reg_ok(0x3f8, 8, &d, "uart");
	memset(data, 0, sizeof(data));
	cr_assert(!io_bus_dispatch(&bus, 0x3f7, data, 1, false));
	cr_assert_eq(data[0], 0xff);
	cr_assert(!io_bus_dispatch(&bus, 0x400, data, 8, false));
	for (int i = 0; i < 8; i++)
		cr_assert_eq(data[i], 0xff, "byte %d", i);
	cr_assert_eq(bus.unhandled, 2);
	cr_assert_eq(d.calls, 0);

	/* Unclaimed writes are counted and dropped. */
	data[0] = 0x12;
	cr_assert(!io_bus_dispatch(&bus, 0x80, data, 1, true));
	cr_assert_eq(data[0], 0x12, "a write's data was modified");
	cr_assert_eq(bus.unhandled, 3);
}

Test(io_bus, empty_bus)
{
	uint8_t data[2] = {0, 0};

	cr_assert(!io_bus_dispatch(&bus, 0, data, 2, false));
	cr_assert_eq(data[0], 0xff);
	cr_assert_eq(data[1], 0xff);
	cr_assert_eq(bus.unhandled, 1);
}

Test(io_bus, overlaps_rejected)
{
	struct fake_dev a = {0};

	reg_ok(0x100, 0x10, &a, "first");
	reg_bad(0x100, 0x10, "same", "first");
	reg_bad(0x10f, 1, "lastbyte", "first");
	reg_bad(0xf0, 0x11, "tail", "first");
	reg_bad(0x108, 0x100, "head", "first");
	reg_bad(0x0, 0x1000, "cover", "first");
	reg_bad(0x104, 2, "inside", "first");
	/* Adjacent on both sides is fine. */
	reg_ok(0xf0, 0x10, &a, "before");
	reg_ok(0x110, 0x10, &a, "after");
	cr_assert_eq(bus.nr, 3);
}

Test(io_bus, empty_and_wrapping_rejected)
{
	reg_bad(0x100, 0, "zero", NULL);
	reg_bad(UINT64_MAX, 2, "wrap", NULL);
	reg_bad(UINT64_MAX - 0xf, 0x20, "wrap2", NULL);
	reg_bad(1, UINT64_MAX, "wrap3", NULL);
	cr_assert_eq(bus.nr, 0);
}

Test(io_bus, top_of_address_space)
{
	struct fake_dev d = {.reply = 0x5a};
	uint8_t data[1];

	/* [2^64 - 16, 2^64) ends exactly at the top: base + len wraps to 0. Rejecting it is
	 * fine; accepting it is too, as long as it then dispatches. */
	struct kerr err = {{0}};
	if (io_bus_register(&bus, UINT64_MAX - 0xf, 0x10, fake_io, &d, "top", &err) == 0) {
		cr_assert(io_bus_dispatch(&bus, UINT64_MAX, data, 1, false));
		cr_assert_eq(data[0], 0x5a);
	}
	reg_ok(0x1000, 0x10, &d, "mid");
}

Test(io_bus, table_full)
{
	static struct fake_dev devs[IO_BUS_MAX_RANGES];
	uint8_t data[1];

	for (int i = 0; i < IO_BUS_MAX_RANGES; i++)
		reg_ok(0x1000 + (uint64_t)i * 0x10, 0x10, &devs[i], "dev");
	cr_assert_eq(bus.nr, IO_BUS_MAX_RANGES);
	reg_bad(0x9000, 0x10, "extra", "too many");
	cr_assert_eq(bus.nr, IO_BUS_MAX_RANGES);

	for (int i = 0; i < IO_BUS_MAX_RANGES; i++) {
		cr_assert(io_bus_dispatch(&bus, 0x1000 + (uint64_t)i * 0x10 + 3, data, 1, true));
		cr_assert_eq(devs[i].calls, 1, "dev %d", i);
		cr_assert_eq(devs[i].offset, 3);
	}
}
