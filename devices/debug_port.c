#include "devices/debug_port.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void debug_port_init(struct debug_port *d, struct vm_control ctl, int log_fd)
{
	d->ctl = ctl;
	d->log_fd = log_fd;
	atomic_init(&d->boot_timer_writes, 0);
	atomic_init(&d->last_unlogged_us, 0);
}

/*
 * One line in one write(2): dprintf would attach a stdio stream to the fd, which calls
 * lseek, a call no vCPU thread's seccomp profile allows.
 */
static void log_line(struct debug_port *d, const char *fmt, ...)
{
	char line[160];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 &&
	    write(d->log_fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0)
		return; /* nowhere to report that the log is gone */
}

static void boot_timer(struct debug_port *d)
{
	double ms = d->ctl.elapsed_ms(d->ctl.opaque);
	uint64_t nr = atomic_fetch_add(&d->boot_timer_writes, 1);

	if (nr < DEBUG_PORT_BOOT_TIMER_LOGGED) {
		log_line(d, "kestrel: boot-timer: guest signalled %.3f ms after start\n", ms);
		return;
	}
	/* Racing vCPUs may store out of order; the summary's time is only a hint. */
	atomic_store(&d->last_unlogged_us, (uint64_t)(ms * 1000.0));
}

void debug_port_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct debug_port *d = opaque;
	char msg[96];

	if (!is_write) {
		memset(data, 0, size);
		return;
	}
	if (offset == DEBUG_PORT_EXIT) {
		snprintf(msg, sizeof(msg), "guest wrote 0x%02x to the debug-exit port", data[0]);
		d->ctl.request_exit(d->ctl.opaque, ((data[0] & 0x7f) << 1) | 1, msg);
	} else if (offset == DEBUG_PORT_BOOT_TIMER) {
		boot_timer(d);
	}
}

void debug_port_finish(struct debug_port *d)
{
	uint64_t nr = atomic_load(&d->boot_timer_writes);

	if (nr <= DEBUG_PORT_BOOT_TIMER_LOGGED)
		return;
	log_line(d,
		 "kestrel: boot-timer: %" PRIu64 " more signals not logged (the last %.3f ms after "
		 "start)\n",
		 nr - DEBUG_PORT_BOOT_TIMER_LOGGED,
		 (double)atomic_load(&d->last_unlogged_us) / 1000.0);
}
