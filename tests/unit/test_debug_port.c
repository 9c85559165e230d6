/* The debug-exit and boot-timer port at 0xf4/0xf5. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "devices/debug_port.h"

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
	return 123.456;
}

static struct debug_port d;
static struct exit_rec ex;
static int pipefd[2];

static void setup(void)
{
	memset(&ex, 0, sizeof(ex));
	ex.status = -1;
	cr_assert_eq(pipe2(pipefd, O_NONBLOCK), 0);
	debug_port_init(&d,
			(struct vm_control){
			    .request_exit = rec_exit, .elapsed_ms = fake_elapsed, .opaque = &ex},
			pipefd[1]);
}

static void teardown(void)
{
	close(pipefd[0]);
	close(pipefd[1]);
}

TestSuite(debug_port, .init = setup, .fini = teardown);

static void check_exit(uint8_t v, int want)
{
	uint8_t b = v;

	memset(&ex, 0, sizeof(ex));
	debug_port_io(&d, DEBUG_PORT_EXIT, &b, 1, true);
	cr_assert_eq(ex.calls, 1, "V=%u: no exit requested", v);
	cr_assert_eq(ex.status, want, "V=%u: status %d, want %d", v, ex.status, want);
	cr_assert_eq(ex.status, ((v & 0x7f) << 1) | 1);
	cr_assert_eq(ex.status & 1, 1, "status must be odd");
	cr_assert_neq(ex.reason[0], '\0');
	cr_assert_null(strchr(ex.reason, '\n'));
}

Test(debug_port, exit_statuses)
{
	check_exit(0, 1);
	check_exit(5, 11);
	check_exit(127, 255);
	check_exit(255, 255);
	check_exit(128, 1);
	check_exit(0x31, 0x63);
}

Test(debug_port, exit_reason_names_value)
{
	uint8_t b = 0x2a;

	debug_port_io(&d, DEBUG_PORT_EXIT, &b, 1, true);
	cr_assert_not_null(strstr(ex.reason, "0x2a"), "reason '%s'", ex.reason);
}

Test(debug_port, boot_timer_logs)
{
	uint8_t b = 0;
	char buf[256] = {0};

	debug_port_io(&d, DEBUG_PORT_BOOT_TIMER, &b, 1, true);
	cr_assert_eq(ex.calls, 0, "the boot timer must not end the VM");
	ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);
	cr_assert_gt(n, 0, "nothing logged");
	cr_assert_not_null(strstr(buf, "boot-timer"), "log line '%s'", buf);
	cr_assert_not_null(strstr(buf, "123.456"), "log line '%s' lacks the time", buf);
	cr_assert_eq(buf[n - 1], '\n', "log line not terminated");
	cr_assert_eq(strchr(buf, '\n'), buf + n - 1, "more than one line: '%s'", buf);

	/* Every write logs again. */
	b = 0xff;
	debug_port_io(&d, DEBUG_PORT_BOOT_TIMER, &b, 1, true);
	n = read(pipefd[0], buf, sizeof(buf) - 1);
	cr_assert_gt(n, 0);
}

Test(debug_port, reads_return_zero)
{
	uint8_t v[4] = {0xaa, 0xbb, 0xcc, 0xdd};
	char buf[64];

	debug_port_io(&d, DEBUG_PORT_EXIT, v, 4, false);
	cr_assert_eq(v[0] | v[1] | v[2] | v[3], 0);
	memset(v, 0xaa, sizeof(v));
	debug_port_io(&d, DEBUG_PORT_BOOT_TIMER, v, 1, false);
	cr_assert_eq(v[0], 0);
	cr_assert_eq(ex.calls, 0, "a read requested an exit");
	cr_assert_eq(read(pipefd[0], buf, sizeof(buf)), -1, "a read logged something");
}

/* A guest that hammers the boot timer must not be able to fill the disk behind stderr. */
Test(debug_port, boot_timer_flood_is_bounded)
{
	static char buf[1 << 16];
	size_t total = 0;
	ssize_t n;
	uint8_t b = 1;

	for (int i = 0; i < 100000; i++) {
		debug_port_io(&d, DEBUG_PORT_BOOT_TIMER, &b, 1, true);
		/* Drain as we go so a full pipe cannot hide what was written. */
		while ((n = read(pipefd[0], buf, sizeof(buf))) > 0)
			total += (size_t)n;
	}
	cr_assert_leq(total, 4096, "%zu bytes logged for 100000 writes", total);
	cr_assert_eq(ex.calls, 0);

	/* One summary line at the end names the writes that were not logged. */
	debug_port_finish(&d);
	n = read(pipefd[0], buf, sizeof(buf) - 1);
	cr_assert_gt(n, 0, "no summary line");
	buf[n] = '\0';
	cr_assert_not_null(strstr(buf, "boot-timer"), "summary '%s'", buf);
	cr_assert_not_null(strstr(buf, "99992"), "summary '%s' lacks the count", buf);
	cr_assert_eq(strchr(buf, '\n'), buf + n - 1, "more than one line: '%s'", buf);
}

Test(debug_port, finish_is_silent_without_a_flood)
{
	uint8_t b = 0;
	char buf[256];

	debug_port_io(&d, DEBUG_PORT_BOOT_TIMER, &b, 1, true);
	cr_assert_gt(read(pipefd[0], buf, sizeof(buf)), 0);
	debug_port_finish(&d);
	cr_assert_eq(read(pipefd[0], buf, sizeof(buf)), -1, "a summary with nothing to say");
}
