/*
 * The PS/2 controller, only as far as a guest without a keyboard needs it: Linux's probe gets
 * sensible answers, and the CPU-reset pulse (command 0xFE, used by `reboot=k`) ends the VM.
 */
#ifndef KESTREL_I8042_H
#define KESTREL_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/vm_control.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64

struct i8042 {
	pthread_mutex_t lock;
	struct vm_control ctl;
	uint8_t ctr; /* controller configuration byte */
	uint8_t outbuf;
	bool outbuf_full;
	uint8_t pending_cmd; /* a command waiting for its data byte, or 0 */
};

void i8042_init(struct i8042 *k, struct vm_control ctl);
void i8042_destroy(struct i8042 *k);
/* io_bus handlers: one for the data port (0x60), one for the command/status port (0x64). */
void i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);
void i8042_cmd_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);

#endif
