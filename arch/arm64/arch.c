/*
 * The architecture seam (arch/arch.h) on arm64: an in-kernel vGICv3 with its redistributors
 * and (when the host has one) an ITS for PCI MSIs, PSCI 0.2 vCPUs, the Image loader and a
 * device tree (arch/arm64/boot_image.c, device_tree.c).
 */
#include "arch/arch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/arm64/boot.h"
#include "arch/arm64/device_tree.h"
#include "arch/arm64/layout.h"
#include "vmm/kvm_dev.h"

#define NR_SPIS 96	       /* the vGIC's interrupt lines beyond the 32 private ones */
#define ARM64_CMDLINE_MAX 2048 /* the kernel's COMMAND_LINE_SIZE */

struct arch_vm {
	int vm_fd;
	unsigned int nr_cpus;
	int gic_fd, its_fd; /* its_fd -1: no ITS, PCI uses INTx */
	struct kvm_vcpu_init init;
};

const struct arch_layout arch_layout = {
    .pci_ecam_base = ARM64_PCI_ECAM_BASE,
    .pci_ecam_size = ARM64_PCI_ECAM_SIZE,
    .pci_mmio32_base = ARM64_PCI_MMIO32_BASE,
    .pci_mmio32_size = ARM64_PCI_MMIO32_SIZE,
    .pci_cf8 = false,
    .virtio_mmio_base = ARM64_VIRTIO_MMIO_BASE,
    .virtio_mmio_slot = ARM64_VIRTIO_MMIO_SLOT,
    .virtio_mmio_max = ARM64_VIRTIO_MMIO_MAX,
    .cmdline_max = ARM64_CMDLINE_MAX,
    .msi_devid = true,
};

/* vmm/'s interrupt numbers are SPI numbers: the routing table's pins, the DT's cells. */
uint32_t arch_virtio_mmio_irq(unsigned int index)
{
	return ARM64_SPI_VIRTIO_MMIO + index;
}

uint32_t arch_pci_intx_irq(unsigned int slot)
{
	return ARM64_SPI_PCI_INTX + slot % 4;
}

uint32_t arch_irq_line_arg(uint32_t spi)
{
	return (uint32_t)KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT | (spi + 32);
}

int arch_check_kvm(int kvm_fd, struct kerr *err)
{
	static const struct kvm_cap_need caps[] = {
	    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
	    {KVM_CAP_ARM_PSCI_0_2, "KVM_CAP_ARM_PSCI_0_2"},
	    {KVM_CAP_DEVICE_CTRL, "KVM_CAP_DEVICE_CTRL"},
	    {KVM_CAP_ONE_REG, "KVM_CAP_ONE_REG"},
	    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
	    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
	    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
	    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
	};

	return kvm_check_caps(kvm_fd, caps, sizeof(caps) / sizeof(caps[0]), err);
}

static int dev_attr(int fd, uint32_t group, uint64_t attr, void *val, const char *what,
		    struct kerr *err)
{
	struct kvm_device_attr a = {.group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)val};

	if (ioctl(fd, KVM_SET_DEVICE_ATTR, &a) < 0)
		return kerr_set(err, "vGIC: %s: %s", what, strerror(errno));
	return 0;
}

static int create_device(int vm_fd, uint32_t type)
{
	struct kvm_create_device cd = {.type = type};

	return ioctl(vm_fd, KVM_CREATE_DEVICE, &cd) < 0 ? -1 : (int)cd.fd;
}

/* The GICv3 and its ITS, placed; initialised once every vCPU exists (arch_vcpus_created). */
static int create_gic(struct arch_vm *a, enum arch_its_choice its_choice, struct kerr *err)
{
	uint64_t dist = ARM64_GICD_BASE, redist = ARM64_GICR_BASE, its = ARM64_GITS_BASE;
	uint32_t nr_irqs = 32 + NR_SPIS;

	if (ARM64_GICR_STRIDE * a->nr_cpus > ARM64_GICR_MAX_SIZE)
		return kerr_set(err, "--cpus %u: the vGIC's redistributor area holds %llu",
				a->nr_cpus,
				(unsigned long long)(ARM64_GICR_MAX_SIZE / ARM64_GICR_STRIDE));
	a->gic_fd = create_device(a->vm_fd, KVM_DEV_TYPE_ARM_VGIC_V3);
	if (a->gic_fd < 0)
		return kerr_set(err, "cannot create a vGICv3 (KVM_CREATE_DEVICE: %s)",
				strerror(errno));
	if (dev_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist,
		     "distributor address", err) ||
	    dev_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist,
		     "redistributor address", err) ||
	    dev_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs, "number of IRQs", err))
		return -1;
	/* No ITS (none on the host's GIC, or --its off): PCI falls back to INTx, which the
	 * device tree then says. */
	if (its_choice == ARCH_ITS_OFF)
		return 0;
	a->its_fd = create_device(a->vm_fd, KVM_DEV_TYPE_ARM_VGIC_ITS);
	if (a->its_fd < 0 && its_choice == ARCH_ITS_ON)
		return kerr_set(err,
				"--its on: KVM offers no vGIC ITS here (KVM_CREATE_DEVICE: %s)",
				strerror(errno));
	if (a->its_fd >= 0 && dev_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE,
				       &its, "ITS address", err))
		return -1;
	return 0;
}

int arch_vm_create(struct arch_vm **out, int kvm_fd, int vm_fd, unsigned int nr_cpus,
		   enum arch_its_choice its, struct kerr *err)
{
	struct arch_vm *a = calloc(1, sizeof(*a));

	(void)kvm_fd;
	if (!a)
		return kerr_set(err, "out of memory");
	a->vm_fd = vm_fd;
	a->nr_cpus = nr_cpus;
	a->gic_fd = a->its_fd = -1;
	*out = a;
	if (ioctl(vm_fd, KVM_ARM_PREFERRED_TARGET, &a->init) < 0)
		return kerr_set(err, "KVM_ARM_PREFERRED_TARGET: %s", strerror(errno));
	return create_gic(a, its, err);
}

int arch_vcpus_created(struct arch_vm *a, struct kerr *err)
{
	if (dev_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "init",
		     err))
		return -1;
	if (a->its_fd >= 0 && dev_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_CTRL,
				       KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "ITS init", err))
		return -1;
	return 0;
}

void arch_vm_destroy(struct arch_vm *a)
{
	if (!a)
		return;
	if (a->its_fd >= 0)
		close(a->its_fd);
	if (a->gic_fd >= 0)
		close(a->gic_fd);
	free(a);
}

int arch_ram_layout(uint64_t ram_size, struct guest_mem_region *out, int max)
{
	if (max < 1 || ram_size == 0 || ram_size > (1ULL << 40) - ARM64_RAM_BASE)
		return -1;
	out[0] = (struct guest_mem_region){.gpa = ARM64_RAM_BASE, .size = ram_size};
	return 1;
}

/* The boot vCPU runs at once; the others wait, powered off, for the guest's PSCI CPU_ON. */
int arch_vcpu_init(struct arch_vm *a, int vcpu_fd, unsigned int id, struct kerr *err)
{
	struct kvm_vcpu_init init = a->init;

	init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
	if (id)
		init.features[0] |= 1u << KVM_ARM_VCPU_POWER_OFF;
	if (ioctl(vcpu_fd, KVM_ARM_VCPU_INIT, &init) < 0)
		return kerr_set(err, "KVM_ARM_VCPU_INIT of vCPU %u: %s", id, strerror(errno));
	return 0;
}

/* Every SPI on its own pin, as the vGIC's default table has them (vmm/ adds MSI routes). */
unsigned int arch_default_gsi_routes(struct kvm_irq_routing_entry *e, unsigned int max,
				     uint32_t *next_gsi)
{
	unsigned int n = 0;

	for (uint32_t spi = 0; spi < NR_SPIS && n < max; spi++, n++)
		e[n] = (struct kvm_irq_routing_entry){
		    .gsi = spi, .type = KVM_IRQ_ROUTING_IRQCHIP, .u.irqchip = {0, spi}};
	*next_gsi = NR_SPIS;
	return n;
}

#define CORE_REG(x) (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(x))

static int set_reg(int vcpu_fd, uint64_t id, uint64_t val, const char *name, struct kerr *err)
{
	struct kvm_one_reg r = {.id = id, .addr = (uint64_t)(uintptr_t)&val};

	if (ioctl(vcpu_fd, KVM_SET_ONE_REG, &r) < 0)
		return kerr_set(err, "KVM_SET_ONE_REG %s: %s", name, strerror(errno));
	return 0;
}

/* booting.rst: EL1h with D, A, I and F masked, x0 = the DTB, x1..x3 = 0, pc = the Image. */
static int set_entry(int vcpu_fd, uint64_t entry, uint64_t dtb, struct kerr *err)
{
	uint64_t pstate = PSR_D_BIT | PSR_A_BIT | PSR_I_BIT | PSR_F_BIT | PSR_MODE_EL1h;

	return set_reg(vcpu_fd, CORE_REG(regs.pstate), pstate, "pstate", err) ||
		       set_reg(vcpu_fd, CORE_REG(regs.pc), entry, "pc", err) ||
		       set_reg(vcpu_fd, CORE_REG(regs.regs[0]), dtb, "x0", err)
		   ? -1
		   : 0;
}

int arch_boot(struct arch_vm *a, const struct guest_mem *gm, struct arch_boot *b, int boot_vcpu_fd,
	      struct kerr *err)
{
	struct arm64_fdt_window mmio[ARM64_VIRTIO_MMIO_MAX];
	uint64_t ram_size = gm->regions[0].size;
	struct arm64_placement pl;
	struct arm64_kernel k;
	uint8_t *dtb = NULL;
	int len, rc = -1;

	if (b->nr_mmio > ARM64_VIRTIO_MMIO_MAX)
		return kerr_set(err, "%u virtio-mmio devices: at most %u", b->nr_mmio,
				ARM64_VIRTIO_MMIO_MAX);
	for (unsigned int i = 0; i < b->nr_mmio; i++)
		mmio[i] =
		    (struct arm64_fdt_window){b->mmio[i].base, b->mmio[i].size, b->mmio[i].irq};
	if (arm64_load_image(gm, ARM64_RAM_BASE, ram_size, b->kernel, b->kernel_len, &k, err))
		return -1;
	dtb = calloc(1, ARM64_DTB_MAX);
	if (!dtb)
		return kerr_set(err, "out of memory for the device tree");
	/* The initrd's place depends on the DTB's size and the DTB holds the initrd's place: the
	 * DTB always takes its whole 2 MiB slot, so place first with the largest size. */
	if (arm64_place(ARM64_RAM_BASE, ram_size, &k, ARM64_DTB_MAX, b->initrd_len, &pl, err))
		goto out;
	struct arm64_fdt_desc d = {
	    .nr_cpus = b->nr_cpus,
	    .ram_base = ARM64_RAM_BASE,
	    .ram_size = ram_size,
	    .bootargs = b->cmdline,
	    .initrd_start = pl.initrd,
	    .initrd_size = b->initrd_len,
	    .its = a->its_fd >= 0,
	    .mmio = mmio,
	    .nr_mmio = b->nr_mmio,
	    .pci = true,
	    .power_key = true,
	};
	len = arm64_fdt_build(&d, dtb, ARM64_DTB_MAX, err);
	if (len < 0)
		goto out;
	if (!guest_mem_write(gm, pl.dtb, dtb, (uint64_t)len) ||
	    (b->initrd_len && !guest_mem_write(gm, pl.initrd, b->initrd, b->initrd_len))) {
		kerr_set(err, "the device tree or the initrd does not fit in guest RAM");
		goto out;
	}
	b->power_button = true; /* the PL061's gpio-keys line (vmm/platform_virt.c) */
	rc = set_entry(boot_vcpu_fd, k.entry, pl.dtb, err);
	if (rc == 0) {
		b->dtb = dtb;
		b->dtb_len = (size_t)len;
		dtb = NULL;
	}
out:
	free(dtb);
	return rc;
}
