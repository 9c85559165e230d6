#include "devices/i8042.h"

#include <string.h>

#define STATUS_OBF 0x01
#define STATUS_SYS 0x04
#define STATUS_CMD 0x08

#define CMD_READ_CTR 0x20
#define CMD_WRITE_CTR 0x60
#define CMD_DISABLE_AUX 0xa7
#define CMD_ENABLE_AUX 0xa8
#define CMD_TEST_AUX 0xa9
#define CMD_SELF_TEST 0xaa
#define CMD_TEST_KBD 0xab
#define CMD_DISABLE_KBD 0xad
#define CMD_ENABLE_KBD 0xae
#define CMD_WRITE_OUTPUT 0xd1
#define CMD_WRITE_KBD_OUT 0xd2
#define CMD_WRITE_AUX_OUT 0xd3
#define CMD_WRITE_AUX 0xd4
#define CMD_RESET 0xfe

#define SELF_TEST_OK 0x55
#define KBD_RESEND 0xfe

void i8042_init(struct i8042 *k, struct vm_control ctl)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	k->ctl = ctl;
	k->ctr = 0x30; /* both ports' clocks disabled, no interrupts: nothing attached */
}

void i8042_destroy(struct i8042 *k)
{
	pthread_mutex_destroy(&k->lock);
}

static void reply(struct i8042 *k, uint8_t v)
{
	k->outbuf = v;
	k->outbuf_full = true;
}

static void command(struct i8042 *k, uint8_t cmd)
{
	switch (cmd) {
	case CMD_READ_CTR:
		reply(k, k->ctr);
		break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_OUTPUT:
	case CMD_WRITE_KBD_OUT:
	case CMD_WRITE_AUX_OUT:
	case CMD_WRITE_AUX:
		k->pending_cmd = cmd;
		break;
	case CMD_SELF_TEST:
		reply(k, SELF_TEST_OK);
		break;
	case CMD_TEST_AUX:
	case CMD_TEST_KBD:
		reply(k, 0x00);
		break;
	case CMD_RESET:
		k->ctl.request_exit(k->ctl.opaque, 0, "guest reset the CPU through the i8042");
		break;
	default:
		break; /* enable/disable ports and the rest have nothing to act on */
	}
}

static void data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending_cmd;

	k->pending_cmd = 0;
	switch (cmd) {
	case CMD_WRITE_CTR:
		k->ctr = v;
		break;
	case CMD_WRITE_OUTPUT:
		/* Bit 0 of the output port is the CPU reset line, active low. */
		if (!(v & 1))
			k->ctl.request_exit(k->ctl.opaque, 0,
					    "guest reset the CPU through the i8042");
		break;
	case CMD_WRITE_KBD_OUT:
	case CMD_WRITE_AUX_OUT:
		reply(k, v);
		break;
	case CMD_WRITE_AUX:
		break; /* no mouse: the byte goes nowhere */
	default:
		/* A byte for the keyboard: there is none, so it asks to resend, as a PC does. */
		reply(k, KBD_RESEND);
		break;
	}
}

void i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct i8042 *k = opaque;

	(void)offset;
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		data_write(k, data[0]);
	} else {
		memset(data, 0, size);
		data[0] = k->outbuf;
		k->outbuf_full = false;
	}
	pthread_mutex_unlock(&k->lock);
}

void i8042_cmd_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct i8042 *k = opaque;

	(void)offset;
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		command(k, data[0]);
	} else {
		memset(data, 0, size);
		data[0] = STATUS_SYS | (k->pending_cmd ? STATUS_CMD : 0) |
			  (k->outbuf_full ? STATUS_OBF : 0);
	}
	pthread_mutex_unlock(&k->lock);
}
