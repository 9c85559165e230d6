/*
 * The PC platform (x86): COM1, the i8042 (for its reset line), the CMOS clock, the debug port
 * and the hardware-reduced ACPI sleep/reset registers with the GED power button, all on I/O
 * ports, at the addresses arch/x86 describes to the guest.
 */
#include "vmm/platform.h"

#include <stdlib.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "devices/acpi_pm.h"
#include "devices/cmos_rtc.h"
#include "devices/debug_port.h"
#include "devices/i8042.h"
#include "devices/uart_8250.h"
#include "vmm/vm.h"

struct platform {
	struct uart_8250 uart;
	struct i8042 i8042;
	struct debug_port debug;
	struct cmos_rtc rtc;
	struct acpi_pm pm; /* sleep/reset registers and the power button (with ACPI) */
};

int platform_create(struct platform **out, struct vm *vm, struct kerr *err)
{
	struct vm_control ctl = vm_control(vm);
	struct platform *p = calloc(1, sizeof(*p));

	if (!p)
		return kerr_set(err, "out of memory");
	uart_init(&p->uart, STDOUT_FILENO, vm_irq(vm, UART_COM1_IRQ));
	i8042_init(&p->i8042, ctl);
	debug_port_init(&p->debug, ctl, STDERR_FILENO);
	cmos_rtc_init(&p->rtc);
	acpi_pm_init(&p->pm, ctl, vm_irq(vm, X86_ACPI_GED_GSI));
	*out = p;
	if (io_bus_register(&vm->pio, X86_ACPI_PM_PORT, ACPI_PM_LEN, acpi_pm_io, &p->pm, "acpi-pm",
			    err) ||
	    io_bus_register(&vm->pio, X86_ACPI_GED_PORT, ACPI_GED_LEN, acpi_ged_io, &p->pm,
			    "acpi-ged", err) ||
	    io_bus_register(&vm->pio, UART_COM1_BASE, UART_NR_REGS, uart_io, &p->uart, "uart",
			    err) ||
	    io_bus_register(&vm->pio, I8042_DATA_PORT, 1, i8042_data_io, &p->i8042, "i8042", err) ||
	    io_bus_register(&vm->pio, I8042_CMD_PORT, 1, i8042_cmd_io, &p->i8042, "i8042", err) ||
	    io_bus_register(&vm->pio, DEBUG_PORT_BASE, DEBUG_PORT_LEN, debug_port_io, &p->debug,
			    "debug-port", err) ||
	    io_bus_register(&vm->pio, CMOS_RTC_PORT, CMOS_RTC_LEN, cmos_rtc_io, &p->rtc, "rtc",
			    err))
		return -1;
	return 0;
}

void platform_destroy(struct platform *p)
{
	if (!p)
		return;
	uart_destroy(&p->uart);
	i8042_destroy(&p->i8042);
	cmos_rtc_destroy(&p->rtc);
	acpi_pm_destroy(&p->pm);
	free(p);
}

void platform_serial_input(struct platform *p, const uint8_t *buf, size_t len)
{
	uart_receive(&p->uart, buf, len);
}

void platform_power_button(struct platform *p)
{
	acpi_pm_power_button(&p->pm);
}

void platform_finish(struct platform *p)
{
	debug_port_finish(&p->debug);
}
