#include "devices/debug_port.h"

#include <stdio.h>
#include <string.h>

void debug_port_init(struct debug_port *d, struct vm_control ctl, int log_fd)
{
	d->ctl = ctl;
	d->log_fd = log_fd;
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
		dprintf(d->log_fd, "kestrel: boot-timer: guest signalled %.3f ms after start\n",
			d->ctl.elapsed_ms(d->ctl.opaque));
	}
}
