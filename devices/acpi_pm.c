#include "devices/acpi_pm.h"

#include <string.h>

void acpi_pm_init(struct acpi_pm *p, struct vm_control ctl, struct irq_line ged_irq)
{
	memset(p, 0, sizeof(*p));
	p->ctl = ctl;
	p->ged_irq = ged_irq;
	pthread_mutex_init(&p->lock, NULL);
}

void acpi_pm_destroy(struct acpi_pm *p)
{
	pthread_mutex_destroy(&p->lock);
}

void acpi_pm_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct acpi_pm *p = opaque;
	uint8_t v = data[0];

	if (!is_write) {
		/* Sleep status never shows a wake: nothing wakes a VM from S5. */
		memset(data, 0, size);
		return;
	}
	if (offset == 0 && (v & ACPI_PM_SLP_EN) &&
	    ((v >> ACPI_PM_SLP_TYP_SHIFT) & ACPI_PM_SLP_TYP_MASK) == ACPI_PM_S5)
		p->ctl.request_exit(p->ctl.opaque, 0, "guest powered off (ACPI S5)");
	else if (offset == 2 && v == ACPI_PM_RESET_VALUE)
		p->ctl.request_exit(p->ctl.opaque, 0,
				    "guest reset the machine (ACPI reset register)");
}

void acpi_ged_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct acpi_pm *p = opaque;
	uint32_t ev;

	if (is_write)
		return;
	memset(data, 0, size);
	/* The guest's _EVT reads the whole register once per interrupt; reading clears it. */
	if (offset != 0 || size != 4)
		return;
	pthread_mutex_lock(&p->lock);
	ev = p->ged_events;
	p->ged_events = 0;
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < 4; i++)
		data[i] = (uint8_t)(ev >> (8 * i));
}

void acpi_pm_power_button(struct acpi_pm *p)
{
	pthread_mutex_lock(&p->lock);
	p->ged_events |= ACPI_GED_POWER_BUTTON;
	pthread_mutex_unlock(&p->lock);
	irq_line_set(&p->ged_irq, 1);
	irq_line_set(&p->ged_irq, 0);
}
