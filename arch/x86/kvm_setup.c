#include "arch/x86/cpu.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/layout.h"
#include "vmm/kvm_dev.h"

int x86_check_kvm(int kvm_fd, struct kerr *err)
{
	static const struct kvm_cap_need caps[] = {
	    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
	    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
	    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
	    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
	    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
	    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
	    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
	    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
	    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
	};

	return kvm_check_caps(kvm_fd, caps, sizeof(caps) / sizeof(caps[0]), err);
}

int x86_vm_init(int vm_fd, struct kerr *err)
{
	uint64_t identity = X86_IDENTITY_MAP_ADDR;
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

	if (ioctl(vm_fd, KVM_SET_TSS_ADDR, (unsigned long)X86_TSS_ADDR) < 0)
		return kerr_set(err, "KVM_SET_TSS_ADDR: %s", strerror(errno));
	/* Only Intel hosts use the identity map; elsewhere the call may be refused harmlessly. */
	if (ioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0 && errno != EINVAL &&
	    errno != ENOTTY)
		return kerr_set(err, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	if (ioctl(vm_fd, KVM_CREATE_IRQCHIP) < 0)
		return kerr_set(err, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	if (ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return kerr_set(err, "KVM_CREATE_PIT2: %s", strerror(errno));
	return 0;
}

#define CPUID_1_ECX_TSC_DEADLINE (1U << 24)

/*
 * KVM emulates the LAPIC timer's TSC-deadline mode with the in-kernel irqchip (which kestrel
 * always has) but leaves the bit out of KVM_GET_SUPPORTED_CPUID; the VMM is to offer it when
 * KVM_CAP_TSC_DEADLINE_TIMER says so (QEMU does). Without it Linux drives its timer in the
 * one-shot count mode ("lapic" instead of "lapic-deadline"): docs/performance.md, "The guest's
 * timer".
 */
static void offer_tsc_deadline(int kvm_fd, struct kvm_cpuid2 *c)
{
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) <= 0)
		return;
	for (unsigned int i = 0; i < c->nent; i++)
		if (c->entries[i].function == 1 && c->entries[i].index == 0)
			c->entries[i].ecx |= CPUID_1_ECX_TSC_DEADLINE;
}

struct kvm_cpuid2 *x86_supported_cpuid(int kvm_fd, struct kerr *err)
{
	/* Grow until KVM stops answering E2BIG. */
	for (unsigned int n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c) {
			kerr_set(err, "out of memory for CPUID entries");
			return NULL;
		}
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			offer_tsc_deadline(kvm_fd, c);
			return c;
		}
		int e = errno;
		free(c);
		if (e != E2BIG) {
			kerr_set(err, "KVM_GET_SUPPORTED_CPUID: %s", strerror(e));
			return NULL;
		}
	}
	kerr_set(err, "KVM_GET_SUPPORTED_CPUID: too many entries");
	return NULL;
}

unsigned int x86_default_gsi_routes(struct kvm_irq_routing_entry *e, unsigned int max,
				    uint32_t *next_gsi)
{
	unsigned int n = 0;

	for (uint32_t pin = 0; pin < X86_IOAPIC_PINS && n < max; pin++) {
		if (pin < 16 && n < max) {
			e[n] = (struct kvm_irq_routing_entry){.gsi = pin,
							      .type = KVM_IRQ_ROUTING_IRQCHIP};
			e[n].u.irqchip.irqchip =
			    pin < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
			e[n].u.irqchip.pin = pin % 8;
			n++;
		}
		if (n < max) {
			e[n] = (struct kvm_irq_routing_entry){.gsi = pin,
							      .type = KVM_IRQ_ROUTING_IRQCHIP};
			e[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
			e[n].u.irqchip.pin = pin;
			n++;
		}
	}
	*next_gsi = X86_IOAPIC_PINS;
	return n;
}
