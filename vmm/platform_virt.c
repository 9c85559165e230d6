/*
 * The arm64 platform: a 16550-compatible UART, a PL031 clock, a PL061 GPIO whose line 3 is the
 * guest's gpio-keys power key, and the debug exit, all on MMIO at the addresses arch/arm64's
 * device tree gives, with GIC SPIs. Power off and reset are PSCI calls KVM turns into system
 * events (vcpu.c).
 */
#include "vmm/platform.h"

#include <stdlib.h>
#include <unistd.h>

#include "arch/arm64/layout.h"
#include "devices/debug_port.h"
#include "devices/pl031.h"
#include "devices/pl061.h"
#include "devices/uart_8250.h"
#include "vmm/vm.h"

struct platform {
	struct uart_8250 uart;
	struct pl031 rtc;
	struct pl061 gpio;
	struct debug_port debug;
};

int platform_create(struct platform **out, struct vm *vm, struct kerr *err)
{
	struct vm_control ctl = vm_control(vm);
	struct platform *p = calloc(1, sizeof(*p));

	if (!p)
		return kerr_set(err, "out of memory");
	uart_init(&p->uart, STDOUT_FILENO, vm_irq(vm, ARM64_SPI_UART));
	pl031_init(&p->rtc);
	pl061_init(&p->gpio, vm_irq(vm, ARM64_SPI_GPIO));
	debug_port_init(&p->debug, ctl, STDERR_FILENO);
	*out = p;
	/* The debug exit keeps port 0xf4's layout: byte 0 exits, byte 1 is the boot timer. */
	if (io_bus_register(&vm->mmio, ARM64_UART_BASE, UART_NR_REGS, uart_io, &p->uart, "uart",
			    err) ||
	    io_bus_register(&vm->mmio, ARM64_RTC_BASE, PL031_SIZE, pl031_io, &p->rtc, "rtc", err) ||
	    io_bus_register(&vm->mmio, ARM64_GPIO_BASE, PL061_SIZE, pl061_io, &p->gpio, "gpio",
			    err) ||
	    io_bus_register(&vm->mmio, ARM64_DEBUG_EXIT_BASE, DEBUG_PORT_LEN, debug_port_io,
			    &p->debug, "debug-exit", err))
		return -1;
	return 0;
}

void platform_destroy(struct platform *p)
{
	if (!p)
		return;
	uart_destroy(&p->uart);
	pl031_destroy(&p->rtc);
	pl061_destroy(&p->gpio);
	free(p);
}

void platform_serial_input(struct platform *p, const uint8_t *buf, size_t len)
{
	uart_receive(&p->uart, buf, len);
}

/* The key stays down: gpio-keys reports the press on the edge, and logind acts on it. */
void platform_power_button(struct platform *p)
{
	pl061_set_input(&p->gpio, ARM64_GPIO_POWER_KEY, true);
}

void platform_finish(struct platform *p)
{
	debug_port_finish(&p->debug);
}
