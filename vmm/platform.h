/*
 * The platform devices every guest of this architecture gets (a serial port, a clock, a way to
 * reset and power off, the debug exit), wired to the buses and interrupt lines. One
 * implementation per architecture, chosen by meson (platform_pc.c on x86); vm.c sees only this.
 */
#ifndef KESTREL_PLATFORM_H
#define KESTREL_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"

struct vm;
struct platform;

/* Creates the devices and registers them on vm's buses (vm's buses and KVM VM exist). */
int platform_create(struct platform **out, struct vm *vm, struct kerr *err);
void platform_destroy(struct platform *p);

/* Bytes typed on the terminal, for the serial port. */
void platform_serial_input(struct platform *p, const uint8_t *buf, size_t len);

/* Presses the guest's power button (only meaningful when the guest was told it has one). */
void platform_power_button(struct platform *p);

/* The vCPUs have stopped: flush what the devices still hold (the debug port's summary). */
void platform_finish(struct platform *p);

#endif
