/*
 * The hardware-reduced ACPI platform's registers (arch/x86/acpi.h says what the tables promise):
 * sleep control (the guest's S5 poweroff ends the VM), sleep status, the reset register (a
 * reboot), and the Generic Event Device's event register, through which kestrel presses the
 * power button. Values, not addresses: the VMM registers the two port ranges.
 */
#ifndef KESTREL_ACPI_PM_H
#define KESTREL_ACPI_PM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/irq.h"
#include "devices/vm_control.h"

#define ACPI_PM_LEN 3  /* sleep control, sleep status, reset */
#define ACPI_GED_LEN 4 /* the 32-bit event register */

#define ACPI_PM_SLP_TYP_SHIFT 2
#define ACPI_PM_SLP_TYP_MASK 0x7
#define ACPI_PM_SLP_EN 0x20
#define ACPI_PM_S5 5
#define ACPI_PM_RESET_VALUE 0x01
#define ACPI_GED_POWER_BUTTON 0x1u

struct acpi_pm {
	struct vm_control ctl;
	struct irq_line ged_irq; /* edge: pulsed once per event */
	pthread_mutex_t lock;	 /* vCPU threads (reads) vs. the event loop (presses) */
	uint32_t ged_events;	 /* pending, cleared by the guest's read */
};

void acpi_pm_init(struct acpi_pm *p, struct vm_control ctl, struct irq_line ged_irq);
void acpi_pm_destroy(struct acpi_pm *p);
/* io_bus handlers for the PM range and the GED register. */
void acpi_pm_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);
void acpi_ged_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write);
/* Presses the power button: the guest shuts down cleanly and powers off. */
void acpi_pm_power_button(struct acpi_pm *p);

#endif
