/* The architecture seam (arch/arch.h) on x86-64: a PC with an IOAPIC, PIT and PCI hole. */
#include "arch/arch.h"

#include <stdio.h>
#include <stdlib.h>

#include "arch/x86/acpi.h"
#include "arch/x86/boot.h"
#include "arch/x86/cpu.h"
#include "arch/x86/layout.h"
#include "devices/uart_8250.h"

struct arch_vm {
	unsigned int nr_cpus;
	struct kvm_cpuid2 *cpuid; /* KVM's supported set, read once for every vCPU */
};

const struct arch_layout arch_layout = {
    .pci_ecam_base = X86_PCI_ECAM_BASE,
    .pci_ecam_size = X86_PCI_ECAM_SIZE,
    .pci_mmio32_base = X86_PCI_MMIO32_BASE,
    .pci_mmio32_size = X86_PCI_MMIO32_SIZE,
    .pci_cf8 = true,
    .virtio_mmio_base = X86_VIRTIO_MMIO_BASE,
    .virtio_mmio_slot = X86_VIRTIO_MMIO_SLOT,
    .virtio_mmio_max = X86_VIRTIO_MMIO_MAX,
    .cmdline_max = X86_CMDLINE_MAX,
    .msi_devid = false,
    .kernel_self_unpack = true,
};

uint32_t arch_virtio_mmio_irq(unsigned int index)
{
	return x86_virtio_mmio_gsi(index);
}

uint32_t arch_pci_intx_irq(unsigned int slot)
{
	return x86_pci_intx_gsi(slot);
}

/* The in-kernel PIC/IOAPIC take the GSI itself. */
uint32_t arch_irq_line_arg(uint32_t gsi)
{
	return gsi;
}

int arch_check_kvm(int kvm_fd, struct kerr *err)
{
	return x86_check_kvm(kvm_fd, err);
}

int arch_vm_create(struct arch_vm **out, int kvm_fd, int vm_fd, unsigned int nr_cpus,
		   enum arch_its_choice its, struct kerr *err)
{
	struct arch_vm *a = calloc(1, sizeof(*a));

	(void)its; /* config_parse refuses --its where arch_layout.msi_devid is false (no ITS) */
	if (!a)
		return kerr_set(err, "out of memory");
	a->nr_cpus = nr_cpus;
	if (x86_vm_init(vm_fd, err))
		goto fail;
	a->cpuid = x86_supported_cpuid(kvm_fd, err);
	if (!a->cpuid)
		goto fail;
	*out = a;
	return 0;
fail:
	arch_vm_destroy(a);
	return -1;
}

void arch_vm_destroy(struct arch_vm *a)
{
	if (!a)
		return;
	free(a->cpuid);
	free(a);
}

int arch_ram_layout(uint64_t ram_size, struct guest_mem_region *out, int max)
{
	struct guest_mem_region r[2];
	int n = x86_ram_layout(ram_size, r);

	if (n <= 0 || n > max)
		return -1;
	for (int i = 0; i < n; i++)
		out[i] = r[i];
	return n;
}

int arch_vcpu_init(struct arch_vm *a, int vcpu_fd, unsigned int id, struct kerr *err)
{
	return x86_vcpu_init(vcpu_fd, id, a->nr_cpus, a->cpuid, err);
}

int arch_vcpus_created(struct arch_vm *a, struct kerr *err)
{
	(void)a, (void)err;
	return 0;
}

unsigned int arch_default_gsi_routes(struct kvm_irq_routing_entry *e, unsigned int max,
				     uint32_t *next_gsi)
{
	return x86_default_gsi_routes(e, max, next_gsi);
}

/* The machine as ACPI describes it: the same devices the MP table and e820 map announce. */
static int write_acpi(const struct guest_mem *gm, const struct arch_boot *b, uint64_t *rsdp,
		      struct kerr *err)
{
	struct x86_acpi_mmio_dev mmio[X86_VIRTIO_MMIO_MAX];
	struct x86_acpi_desc d = {
	    .nr_cpus = b->nr_cpus,
	    .lapic_addr = X86_LAPIC_ADDR,
	    .ioapic_addr = X86_IOAPIC_ADDR,
	    .ioapic_id = (uint8_t)b->nr_cpus,
	    .pci = {.present = true,
		    .ecam_base = X86_PCI_ECAM_BASE,
		    .mmio32_base = (uint32_t)X86_PCI_MMIO32_BASE,
		    .mmio32_size = (uint32_t)X86_PCI_MMIO32_SIZE,
		    .intx_gsi = x86_acpi_default_intx_gsi},
	    .uart = {.present = true, .port = UART_COM1_BASE, .gsi = UART_COM1_IRQ},
	    .mmio = mmio,
	    .ged = {.present = true,
		    .space = X86_ACPI_SPACE_IO,
		    .addr = X86_ACPI_GED_PORT,
		    .gsi = X86_ACPI_GED_GSI},
	    .pm_port = X86_ACPI_PM_PORT,
	};

	if (b->nr_mmio > X86_VIRTIO_MMIO_MAX)
		return kerr_set(err, "%u virtio-mmio devices: at most %u", b->nr_mmio,
				X86_VIRTIO_MMIO_MAX);
	for (unsigned int i = 0; i < b->nr_mmio; i++)
		mmio[d.nr_mmio++] = (struct x86_acpi_mmio_dev){.base = b->mmio[i].base,
							       .size = b->mmio[i].size,
							       .gsi = b->mmio[i].irq,
							       .level = true};
	return x86_write_acpi(gm, &d, rsdp, err);
}

int arch_boot(struct arch_vm *a, const struct guest_mem *gm, struct arch_boot *b, int boot_vcpu_fd,
	      struct kerr *err)
{
	uint64_t rsdp = 0;
	struct x86_boot boot;

	(void)a;
	if (b->acpi && write_acpi(gm, b, &rsdp, err))
		return -1;
	b->power_button = b->acpi; /* the GED's, in the DSDT */
	struct x86_boot_config bc = {
	    .kernel = b->kernel,
	    .kernel_len = b->kernel_len,
	    .initrd = b->initrd,
	    .initrd_len = b->initrd_len,
	    .cmdline = b->cmdline,
	    .acpi_rsdp = rsdp,
	    .unpack_in_guest = b->unpack_in_guest,
	    .cache = b->cache,
	};
	int ret = x86_load_kernel(gm, &bc, &boot, err);

	snprintf(b->note, sizeof(b->note), "%s", ret ? "" : boot.note);
	if (ret || x86_write_boot_tables(gm, err) || x86_write_mptable(gm, b->nr_cpus, err) ||
	    x86_vcpu_set_entry(boot_vcpu_fd, &boot, err))
		return -1;
	return 0;
}
