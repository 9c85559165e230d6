/*
 * What vmm/ asks of an architecture. arch/x86/ implements it today (arch/x86/arch.c) and
 * arch/arm64/ will; meson compiles one. The types here are neutral: an architecture knows
 * nothing of virtio or of struct vm, and vmm/ nothing of CPUID, boot_params or device trees.
 *
 * Order of calls: arch_check_kvm, arch_vm_create (after KVM_CREATE_VM), arch_ram_layout,
 * arch_vcpu_init per vCPU, arch_vcpus_created, then arch_boot once the devices exist, then
 * arch_vm_destroy.
 */
#ifndef KESTREL_ARCH_H
#define KESTREL_ARCH_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/guest_mem.h"

/* Where vmm/ may put the devices it creates, and their interrupt numbers. */
struct arch_layout {
	uint64_t pci_ecam_base, pci_ecam_size;	     /* bus 0's configuration space */
	uint64_t pci_mmio32_base, pci_mmio32_size;   /* the window BARs are assigned from */
	bool pci_cf8;				     /* the 0xcf8/0xcfc configuration ports exist */
	uint64_t virtio_mmio_base, virtio_mmio_slot; /* device n at base + n * slot */
	unsigned int virtio_mmio_max;
	size_t cmdline_max; /* bytes, including the terminating NUL */
	bool msi_devid;	    /* MSI routes carry the requester ID: an ITS translates by it (--its) */
	bool kernel_self_unpack; /* the kernel image can decompress itself (x86's bzImage) */
};

extern const struct arch_layout arch_layout;

/* The interrupt (GSI) of virtio-mmio device n, level-triggered. */
uint32_t arch_virtio_mmio_irq(unsigned int index);
/* The interrupt (GSI) of a PCI slot's INTA line, level-triggered. */
uint32_t arch_pci_intx_irq(unsigned int slot);

/* KVM_IRQ_LINE's irq field for an interrupt (GSI) vmm/ wired a device to. */
uint32_t arch_irq_line_arg(uint32_t gsi);

/* Checks the KVM capabilities kestrel relies on; names the first one missing. */
int arch_check_kvm(int kvm_fd, struct kerr *err);

struct arch_vm; /* the architecture's own state for one VM */

/* Whether PCI MSIs get a translator (arm64's GIC ITS); x86's MSIs need none. */
enum arch_its_choice { ARCH_ITS_AUTO, ARCH_ITS_ON, ARCH_ITS_OFF };

/* The VM-wide parts: interrupt controllers, timers, anything before memory and vCPUs. */
int arch_vm_create(struct arch_vm **out, int kvm_fd, int vm_fd, unsigned int nr_cpus,
		   enum arch_its_choice its, struct kerr *err);
void arch_vm_destroy(struct arch_vm *a);

/* RAM regions for ram_size bytes (at most max); returns the count, or -1 if it cannot fit. */
int arch_ram_layout(uint64_t ram_size, struct guest_mem_region *out, int max);

/* Per-vCPU state every vCPU needs before it first runs. */
int arch_vcpu_init(struct arch_vm *a, int vcpu_fd, unsigned int id, struct kerr *err);

/*
 * Every vCPU exists: finish what needs them all (arm64's vGIC). Before any device: KVM then
 * resets the interrupt routing table, which the devices fill afterwards.
 */
int arch_vcpus_created(struct arch_vm *a, struct kerr *err);

/*
 * The interrupt controller's default routes, which a full KVM_SET_GSI_ROUTING table must
 * repeat. Returns the number written; *next_gsi is the first GSI free for MSI routes.
 */
unsigned int arch_default_gsi_routes(struct kvm_irq_routing_entry *e, unsigned int max,
				     uint32_t *next_gsi);

/* A device window the guest must be told about (virtio-mmio today). */
struct arch_mmio_dev {
	uint64_t base, size;
	uint32_t irq;
};

/*
 * Unpacked kernels kept on disk by vmm/ (vmm/kernel_cache.c), for loaders that decompress a
 * payload on the host. Every descriptor reads or writes the decompressed stream from its start.
 */
struct arch_unpack_cache {
	void *opaque;
	/* An exact hit for the payload: a descriptor (the caller closes it), where the stream
	 * starts in it (*out_off) and its length (*out_len); -1: a miss. The stream's holes are
	 * zeros (guest_mem_place skips them). */
	int (*lookup)(void *opaque, const uint8_t *payload, size_t len, uint64_t *out_off,
		      uint64_t *out_len);
	/* The hit did not load: drop it. */
	void (*reject)(void *opaque);
	/* A descriptor the decoder writes the stream to as well, or -1; end() closes it. */
	int (*begin)(void *opaque, const uint8_t *payload, size_t len);
	/* The stream (out_len bytes) written to fd loaded (ok): keep it; else drop it. */
	void (*end)(void *opaque, int fd, bool ok, uint64_t out_len);
};

/* The machine vmm/ built, and what to boot on it. */
struct arch_boot {
	unsigned int nr_cpus;
	bool acpi; /* describe the machine with ACPI (x86) as well as the legacy tables */
	const struct arch_mmio_dev *mmio;
	unsigned int nr_mmio;
	const uint8_t *kernel;
	size_t kernel_len;
	const uint8_t *initrd; /* may be NULL */
	size_t initrd_len;
	const char *cmdline;
	bool
	    unpack_in_guest; /* let a compressed kernel decompress itself (--kernel-unpack guest) */
	const struct arch_unpack_cache *cache; /* NULL: none (--kernel-cache off) */
	char note[160];	   /* out: how the kernel was loaded, for -v; may be empty */
	bool power_button; /* out: the guest was told of a power button (platform_power_button) */
	uint8_t *dtb;	   /* out: the device tree the guest got (arm64), or NULL; caller frees */
	size_t dtb_len;
};

/* Loads the kernel and initrd, describes the machine to the guest, sets the boot vCPU's entry. */
int arch_boot(struct arch_vm *a, const struct guest_mem *gm, struct arch_boot *b, int boot_vcpu_fd,
	      struct kerr *err);

#endif
