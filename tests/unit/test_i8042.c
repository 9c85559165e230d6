/* The i8042: answers to Linux's probe, and the CPU-reset paths that end the VM. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "devices/i8042.h"

#define STATUS_OBF 0x01
#define STATUS_SYS 0x04
#define STATUS_CMD 0x08

struct exit_rec {
	int calls;
	int status;
	char reason[128];
};

static void rec_exit(void *opaque, int status, const char *reason)
{
	struct exit_rec *e = opaque;

	e->calls++;
	e->status = status;
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
}

static double fake_elapsed(void *opaque)
{
	(void)opaque;
	return 0;
}

static struct i8042 k;
static struct exit_rec ex;

static void setup(void)
{
	memset(&ex, 0, sizeof(ex));
	ex.status = -1;
	i8042_init(&k, (struct vm_control){
			   .request_exit = rec_exit, .elapsed_ms = fake_elapsed, .opaque = &ex});
}

static void teardown(void)
{
	i8042_destroy(&k);
}

static uint8_t status(void)
{
	uint8_t d = 0xee;

	i8042_cmd_io(&k, 0, &d, 1, false);
	return d;
}

static void cmd(uint8_t v)
{
	i8042_cmd_io(&k, 0, &v, 1, true);
}

static uint8_t data_rd(void)
{
	uint8_t d = 0xee;

	i8042_data_io(&k, 0, &d, 1, false);
	return d;
}

static void data_wr(uint8_t v)
{
	i8042_data_io(&k, 0, &v, 1, true);
}

TestSuite(i8042, .init = setup, .fini = teardown);

Test(i8042, idle_status)
{
	uint8_t s = status();

	cr_assert_eq(s & STATUS_OBF, 0, "output buffer full with nothing sent");
	cr_assert_eq(s & STATUS_SYS, STATUS_SYS, "system flag clear");
	cr_assert_eq(s & STATUS_CMD, 0);
	cr_assert_eq(ex.calls, 0);
}

Test(i8042, self_test)
{
	cmd(0xaa);
	cr_assert_eq(status() & STATUS_OBF, STATUS_OBF, "no reply waiting after self-test");
	cr_assert_eq(data_rd(), 0x55);
	cr_assert_eq(status() & STATUS_OBF, 0, "reading the reply must empty the buffer");
	cr_assert_eq(ex.calls, 0);
}

Test(i8042, port_tests_pass)
{
	cmd(0xab);
	cr_assert_eq(status() & STATUS_OBF, STATUS_OBF);
	cr_assert_eq(data_rd(), 0x00);
	cmd(0xa9);
	cr_assert_eq(status() & STATUS_OBF, STATUS_OBF);
	cr_assert_eq(data_rd(), 0x00);
}

Test(i8042, read_and_write_ctr)
{
	cmd(0x20);
	cr_assert_eq(status() & STATUS_OBF, STATUS_OBF);
	cr_assert_eq(data_rd(), 0x30, "initial CTR");

	cmd(0x60);
	cr_assert_eq(status() & STATUS_CMD, STATUS_CMD, "a command waiting for data");
	data_wr(0x47);
	cr_assert_eq(status() & STATUS_CMD, 0);
	cr_assert_eq(status() & STATUS_OBF, 0, "writing the CTR replies nothing");
	cmd(0x20);
	cr_assert_eq(data_rd(), 0x47);

	cmd(0x60);
	data_wr(0x00);
	cmd(0x20);
	cr_assert_eq(data_rd(), 0x00);
	cr_assert_eq(ex.calls, 0);
}

Test(i8042, reset_pulse_requests_exit)
{
	cmd(0xfe);
	cr_assert_eq(ex.calls, 1, "0xFE did not request an exit");
	cr_assert_eq(ex.status, 0);
	cr_assert_neq(ex.reason[0], '\0');
	cr_assert_null(strchr(ex.reason, '\n'));
}

Test(i8042, output_port_reset_line)
{
	/* Bit 0 set: the CPU keeps running. */
	cmd(0xd1);
	data_wr(0xdf);
	cr_assert_eq(ex.calls, 0, "exit requested with the reset line high");
	/* Bit 0 clear: reset. */
	cmd(0xd1);
	data_wr(0xfe);
	cr_assert_eq(ex.calls, 1, "output-port write with bit 0 clear did not reset");
	cr_assert_eq(ex.status, 0);
}

Test(i8042, keyboard_bytes_get_resend)
{
	/* No command pending: a byte on the data port goes to the (missing) keyboard. */
	data_wr(0xff); /* keyboard reset */
	cr_assert_eq(status() & STATUS_OBF, STATUS_OBF);
	cr_assert_eq(data_rd(), 0xfe);
	data_wr(0xf2); /* identify */
	cr_assert_eq(data_rd(), 0xfe);
	cr_assert_eq(status() & STATUS_OBF, 0);
	cr_assert_eq(ex.calls, 0);
}

Test(i8042, write_kbd_out_echoes)
{
	cmd(0xd2);
	data_wr(0x1c);
	cr_assert_eq(status() & STATUS_OBF, STATUS_OBF);
	cr_assert_eq(data_rd(), 0x1c);
	cmd(0xd3);
	data_wr(0x2d);
	cr_assert_eq(data_rd(), 0x2d);
	/* 0xD4 sends to the missing mouse: nothing comes back, no resend either. */
	cmd(0xd4);
	data_wr(0xff);
	cr_assert_eq(status() & STATUS_OBF, 0);
	/* The pending command is consumed: the next byte goes to the keyboard. */
	data_wr(0xee);
	cr_assert_eq(data_rd(), 0xfe);
}

Test(i8042, wide_reads_zero_extended)
{
	uint8_t d[4] = {0xaa, 0xbb, 0xcc, 0xdd};

	cmd(0xaa);
	i8042_data_io(&k, 0, d, 4, false);
	cr_assert_eq(d[0], 0x55);
	cr_assert_eq(d[1], 0);
	cr_assert_eq(d[2], 0);
	cr_assert_eq(d[3], 0);
	memset(d, 0xaa, sizeof(d));
	i8042_cmd_io(&k, 0, d, 4, false);
	cr_assert_eq(d[1] | d[2] | d[3], 0);
}
