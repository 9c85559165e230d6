/*
 * The user's terminal as the guest's serial console: raw mode while stdin is a TTY (always
 * restored), keystrokes to the UART, Ctrl-A x to quit, and signals that end the VM.
 */
#ifndef KESTREL_TERMINAL_H
#define KESTREL_TERMINAL_H

#include <stdbool.h>
#include <termios.h>

#include <stddef.h>
#include <stdint.h>
#include "vmm/event_loop.h"
#include "vmm/vm.h"

/* Where typed bytes go: the UART or virtio-console port 0. Runs on the event-loop thread. */
typedef void (*terminal_sink_fn)(void *opaque, const uint8_t *buf, size_t len);

struct terminal {
	struct vm *vm;
	terminal_sink_fn sink;
	void *sink_opaque;
	struct event_handler input;
	struct event_handler signals;
	struct event_handler shutdown_timer; /* timerfd: the guest's time to power off ran out */
	unsigned int shutdown_timeout;	     /* seconds; 0: SIGTERM stops at once */
	bool shutting_down;		     /* the power button was pressed for a SIGTERM */
	bool input_registered;
	bool raw;
	bool escape; /* the previous key was Ctrl-A */
	struct termios saved;
};

/* Call with the signals of terminal_block_signals() already blocked in every thread. */
/*
 * SIGTERM presses the ACPI power button when the guest has ACPI and shutdown_timeout > 0, and
 * stops the VM shutdown_timeout seconds later if the guest has not powered off; a second
 * SIGTERM, SIGINT or SIGHUP stops it at once.
 */
int terminal_init(struct terminal *t, struct vm *vm, terminal_sink_fn sink, void *sink_opaque,
		  unsigned int shutdown_timeout, struct kerr *err);
void terminal_restore(struct terminal *t);

/* Blocks SIGINT/SIGTERM/SIGHUP so that the event loop receives them through a signalfd. */
int terminal_block_signals(struct kerr *err);

#endif
