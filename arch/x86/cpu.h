/* x86 VM and vCPU setup on KVM: irqchip, PIT, CPUID, MSRs, LAPIC, registers, MP table. */
#ifndef KESTREL_X86_CPU_H
#define KESTREL_X86_CPU_H

#include <linux/kvm.h>

#include "arch/x86/boot.h"
#include "vmm/error.h"
#include "vmm/guest_mem.h"

/* Checks the KVM capabilities kestrel relies on; names the first one missing. */
int x86_check_kvm(int kvm_fd, struct kerr *err);

/* TSS and identity-map addresses, the in-kernel irqchip (PIC + IOAPIC + LAPIC) and the PIT. */
int x86_vm_init(int vm_fd, struct kerr *err);

/* KVM_GET_SUPPORTED_CPUID plus what KVM emulates but leaves out (the TSC-deadline timer);
 * the caller frees the result. */
struct kvm_cpuid2 *x86_supported_cpuid(int kvm_fd, struct kerr *err);

/*
 * Per-vCPU state every vCPU needs: CPUID (hypervisor bit, its own APIC ID), MSRs, FPU, LAPIC
 * LINT0/LINT1 wiring. cpuid is copied and adjusted, not modified.
 */
int x86_vcpu_init(int vcpu_fd, unsigned int id, unsigned int nr_cpus,
		  const struct kvm_cpuid2 *cpuid, struct kerr *err);

/* GDT and identity-mapped page tables in low guest memory, used by the boot vCPU's entry. */
int x86_write_boot_tables(const struct guest_mem *gm, struct kerr *err);

/* Registers and segments of the boot vCPU for the loader's entry mode. */
int x86_vcpu_set_entry(int vcpu_fd, const struct x86_boot *boot, struct kerr *err);

/* Intel MP table (floating pointer + configuration table) so Linux starts all vCPUs. */
int x86_write_mptable(const struct guest_mem *gm, unsigned int nr_cpus, struct kerr *err);

/*
 * The in-kernel irqchip's default routes (GSI n on PIC pin n for n < 16, on IOAPIC pin n for
 * n < 24), which a full KVM_SET_GSI_ROUTING table must repeat. Returns the number written;
 * *next_gsi is the first GSI free for MSI routes.
 */
unsigned int x86_default_gsi_routes(struct kvm_irq_routing_entry *e, unsigned int max,
				    uint32_t *next_gsi);

#define X86_IOAPIC_PINS 24

/* The IOAPIC pin (= GSI) a PCI slot's INTA line is wired to: pins 16-23, as on a PC. */
static inline unsigned int x86_pci_intx_gsi(unsigned int slot)
{
	return 16 + slot % 8;
}

#define X86_MPTABLE_ADDR 0xf0000ULL
#define X86_IOAPIC_ADDR 0xfec00000ULL
#define X86_LAPIC_ADDR 0xfee00000ULL

#endif
