/*
 * The debug port, for test kernels and CI: a byte V written to port 0xf4 ends the VM with exit
 * status ((V & 0x7f) << 1) | 1 (the isa-debug-exit encoding, so it never collides with kestrel's
 * own even statuses); any byte written to port 0xf5 logs the time since kestrel started (a boot
 * timer a guest's init can hit to measure boot time).
 *
 * Only the first DEBUG_PORT_BOOT_TIMER_LOGGED boot-timer writes are logged: a guest that loops
 * on the port would otherwise fill the disk behind stderr. Later ones are only counted, and
 * debug_port_finish() prints one summary line for them.
 *
 * Threads: debug_port_io may run on several vCPU threads at once; it takes no lock.
 */
#ifndef KESTREL_DEBUG_PORT_H
#define KESTREL_DEBUG_PORT_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/vm_control.h"

#define DEBUG_PORT_BASE 0xf4
#define DEBUG_PORT_LEN 2
#define DEBUG_PORT_EXIT 0
#define DEBUG_PORT_BOOT_TIMER 1
#define DEBUG_PORT_BOOT_TIMER_LOGGED 8

struct debug_port {
	struct vm_control ctl;
	int log_fd;
	_Atomic uint64_t boot_timer_writes;
	_Atomic uint64_t last_unlogged_us; /* time of the latest write not logged */
};

void debug_port_init(struct debug_port *d, struct vm_control ctl, int log_fd);
void debug_port_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);
/* Once no vCPU runs: one line counting the boot-timer writes that were not logged, if any. */
void debug_port_finish(struct debug_port *d);

#endif
