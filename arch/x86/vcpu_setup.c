#include "arch/x86/cpu.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/layout.h"

#define CPUID_1_ECX_HYPERVISOR (1U << 31)

#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MSR_IA32_TSC 0x10
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MISC_ENABLE_FAST_STRING 1ULL
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MTRR_DEF_TYPE_ENABLE (1ULL << 11)
#define MTRR_TYPE_WRBACK 6ULL

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

/* Each vCPU sees its own APIC ID in every leaf that reports one. */
static void adjust_cpuid(struct kvm_cpuid2 *c, unsigned int id, unsigned int nr_cpus)
{
	for (unsigned int i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
			e->ebx = (e->ebx & 0x0000ffff) | ((nr_cpus & 0xff) << 16) | (id << 24);
			/* HTT means "the count in EBX[23:16] is valid". */
			e->edx |= 1U << 28;
			break;
		case 0xb:
		case 0x1f:
			e->edx = id;
			break;
		default:
			break;
		}
	}
}

static int set_cpuid(int vcpu_fd, unsigned int id, unsigned int nr_cpus,
		     const struct kvm_cpuid2 *cpuid, struct kerr *err)
{
	size_t sz = sizeof(*cpuid) + cpuid->nent * sizeof(cpuid->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	int rc = 0;

	if (!c)
		return kerr_set(err, "out of memory for CPUID");
	memcpy(c, cpuid, sz);
	adjust_cpuid(c, id, nr_cpus);
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
		rc = kerr_set(err, "KVM_SET_CPUID2 (vCPU %u): %s", id, strerror(errno));
	free(c);
	return rc;
}

static int set_msrs(int vcpu_fd, unsigned int id, struct kerr *err)
{
	static const uint32_t zeroed[] = {MSR_IA32_SYSENTER_CS,
					  MSR_IA32_SYSENTER_ESP,
					  MSR_IA32_SYSENTER_EIP,
					  MSR_STAR,
					  MSR_LSTAR,
					  MSR_CSTAR,
					  MSR_SYSCALL_MASK,
					  MSR_KERNEL_GS_BASE,
					  MSR_IA32_TSC};
	enum { NZ = sizeof(zeroed) / sizeof(zeroed[0]), N = NZ + 2 };
	struct kvm_msrs *m = calloc(1, sizeof(*m) + N * sizeof(m->entries[0]));
	int rc;

	if (!m)
		return kerr_set(err, "out of memory for MSRs");
	for (unsigned int i = 0; i < NZ; i++)
		m->entries[i].index = zeroed[i];
	m->entries[NZ].index = MSR_IA32_MISC_ENABLE;
	m->entries[NZ].data = MISC_ENABLE_FAST_STRING;
	/*
	 * MTRRs on, everything write-back, as firmware leaves them: a Linux guest that finds
	 * them off also skips its PAT setup and has no write-combining mappings. KVM takes the
	 * memory type of guest RAM from the host unless a device does non-coherent DMA, so no
	 * variable range is needed for the MMIO holes (they are not RAM; every access exits).
	 */
	m->entries[NZ + 1].index = MSR_MTRR_DEF_TYPE;
	m->entries[NZ + 1].data = MTRR_DEF_TYPE_ENABLE | MTRR_TYPE_WRBACK;
	m->nmsrs = N;
	rc = ioctl(vcpu_fd, KVM_SET_MSRS, m);
	free(m);
	if (rc < 0)
		return kerr_set(err, "KVM_SET_MSRS (vCPU %u): %s", id, strerror(errno));
	if (rc != N)
		return kerr_set(err, "KVM_SET_MSRS (vCPU %u): KVM took %d of %d MSRs", id, rc, N);
	return 0;
}

static int set_fpu(int vcpu_fd, unsigned int id, struct kerr *err)
{
	struct kvm_fpu fpu;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f; /* the x87 reset state */
	fpu.mxcsr = 0x1f80;
	if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return kerr_set(err, "KVM_SET_FPU (vCPU %u): %s", id, strerror(errno));
	return 0;
}

static uint32_t lapic_get(const struct kvm_lapic_state *s, int reg)
{
	uint32_t v;

	memcpy(&v, &s->regs[reg], sizeof(v));
	return v;
}

static void lapic_set(struct kvm_lapic_state *s, int reg, uint32_t v)
{
	memcpy(&s->regs[reg], &v, sizeof(v));
}

/* LINT0 carries the legacy PIC (ExtINT), LINT1 the NMI, as on a PC. */
static int set_lapic(int vcpu_fd, unsigned int id, struct kerr *err)
{
	struct kvm_lapic_state s;

	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &s) < 0)
		return kerr_set(err, "KVM_GET_LAPIC (vCPU %u): %s", id, strerror(errno));
	lapic_set(&s, APIC_LVT0, (lapic_get(&s, APIC_LVT0) & ~0x700U) | (APIC_MODE_EXTINT << 8));
	lapic_set(&s, APIC_LVT1, (lapic_get(&s, APIC_LVT1) & ~0x700U) | (APIC_MODE_NMI << 8));
	if (ioctl(vcpu_fd, KVM_SET_LAPIC, &s) < 0)
		return kerr_set(err, "KVM_SET_LAPIC (vCPU %u): %s", id, strerror(errno));
	return 0;
}

int x86_vcpu_init(int vcpu_fd, unsigned int id, unsigned int nr_cpus,
		  const struct kvm_cpuid2 *cpuid, struct kerr *err)
{
	if (set_cpuid(vcpu_fd, id, nr_cpus, cpuid, err) || set_msrs(vcpu_fd, id, err) ||
	    set_fpu(vcpu_fd, id, err) || set_lapic(vcpu_fd, id, err))
		return -1;
	return 0;
}

/* GDT slots: the 64-bit boot protocol wants __BOOT_CS = 0x10 and __BOOT_DS = 0x18. */
enum { GDT_CODE32 = 1, GDT_CODE64 = 2, GDT_DATA = 3, GDT_TSS = 4, GDT_ENTRIES = 5 };

static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000) << 32) | ((uint64_t)(flags & 0xf0ff) << 40) |
	       ((uint64_t)(limit & 0x000f0000) << 32) | ((uint64_t)(base & 0x00ffffff) << 16) |
	       (uint64_t)(limit & 0x0000ffff);
}

static const uint64_t *boot_gdt(void)
{
	static uint64_t gdt[GDT_ENTRIES];

	gdt[0] = 0;
	gdt[GDT_CODE32] = gdt_entry(0xc09b, 0, 0xfffff);
	gdt[GDT_CODE64] = gdt_entry(0xa09b, 0, 0xfffff);
	gdt[GDT_DATA] = gdt_entry(0xc093, 0, 0xfffff);
	gdt[GDT_TSS] = gdt_entry(0x808b, 0, 0xfffff);
	return gdt;
}

int x86_write_boot_tables(const struct guest_mem *gm, struct kerr *err)
{
	uint64_t *pml4 = guest_mem_ptr(gm, X86_PML4_ADDR, 4096);
	uint64_t *pdpt = guest_mem_ptr(gm, X86_PDPT_ADDR, 4096);
	uint64_t *pd = guest_mem_ptr(gm, X86_PD_ADDR, 4 * 4096);
	uint64_t idt0 = 0;

	if (!pml4 || !pdpt || !pd)
		return kerr_set(err, "guest memory too small for the boot page tables");
	if (!guest_mem_write(gm, X86_GDT_ADDR, boot_gdt(), GDT_ENTRIES * sizeof(uint64_t)) ||
	    !guest_mem_write(gm, X86_IDT_ADDR, &idt0, sizeof(idt0)))
		return kerr_set(err, "guest memory too small for the boot GDT");
	/* Identity-map the first 4 GiB with 2 MiB pages: present | writable (| page size). */
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = X86_PDPT_ADDR | 0x3;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (X86_PD_ADDR + i * 4096) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83;
	return 0;
}

static struct kvm_segment segment(unsigned int index, uint64_t desc)
{
	struct kvm_segment s = {
	    .base = 0,
	    .limit = 0xffffffff,
	    .selector = (uint16_t)(index * 8),
	    .type = (desc >> 40) & 0xf,
	    .present = (desc >> 47) & 1,
	    .dpl = (desc >> 45) & 3,
	    .db = (desc >> 54) & 1,
	    .s = (desc >> 44) & 1,
	    .l = (desc >> 53) & 1,
	    .g = (desc >> 55) & 1,
	};
	return s;
}

#define CR0_PE 0x1ULL
#define CR0_ET 0x10ULL
#define CR0_NE 0x20ULL
#define CR0_PG 0x80000000ULL
#define CR4_PAE 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

int x86_vcpu_set_entry(int vcpu_fd, const struct x86_boot *boot, struct kerr *err)
{
	const uint64_t *gdt = boot_gdt();
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_segment data = segment(GDT_DATA, gdt[GDT_DATA]);
	bool lm = boot->mode == X86_ENTRY_LINUX64;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return kerr_set(err, "KVM_GET_SREGS: %s", strerror(errno));
	sregs.gdt.base = X86_GDT_ADDR;
	sregs.gdt.limit = GDT_ENTRIES * 8 - 1;
	sregs.idt.base = X86_IDT_ADDR;
	sregs.idt.limit = 7;
	sregs.cs = lm ? segment(GDT_CODE64, gdt[GDT_CODE64]) : segment(GDT_CODE32, gdt[GDT_CODE32]);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.tr = segment(GDT_TSS, gdt[GDT_TSS]);
	sregs.cr0 = CR0_PE | CR0_ET | CR0_NE;
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (lm) {
		sregs.cr3 = X86_PML4_ADDR;
		sregs.cr4 |= CR4_PAE;
		sregs.cr0 |= CR0_PG;
		sregs.efer |= EFER_LME | EFER_LMA;
	}
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return kerr_set(err, "KVM_SET_SREGS: %s", strerror(errno));

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = boot->entry;
	if (lm) {
		regs.rsi = boot->info_gpa;
		regs.rsp = regs.rbp = 0x8ff0;
	} else {
		regs.rbx = boot->info_gpa;
	}
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return kerr_set(err, "KVM_SET_REGS: %s", strerror(errno));
	return 0;
}
