#include "vmm/vm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/arch.h"
#include "virtio/mmio.h"
#include "vmm/file_map.h"
#include "vmm/kernel_cache.h"
#include "vmm/kvm_dev.h"
#include "vmm/platform.h"
#include "vmm/vcpu.h"

double vm_elapsed_ms(const struct vm *vm)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - vm->start.tv_sec) * 1e3 +
	       (double)(now.tv_nsec - vm->start.tv_nsec) / 1e6;
}

void vm_request_exit(struct vm *vm, int status, const char *fmt, ...)
{
	uint64_t one = 1;
	va_list ap;

	pthread_mutex_lock(&vm->exit_lock);
	if (!vm->exiting) {
		vm->exit_status = status;
		va_start(ap, fmt);
		vsnprintf(vm->exit_reason, sizeof(vm->exit_reason), fmt, ap);
		va_end(ap);
		__atomic_store_n(&vm->exiting, true, __ATOMIC_RELEASE);
		if (write(vm->exit_fd, &one, sizeof(one)) != sizeof(one))
			abort(); /* an eventfd write of 1 cannot fail short of a bug */
	}
	pthread_mutex_unlock(&vm->exit_lock);
}

int vm_irq_line(struct vm *vm, unsigned int irq, int level)
{
	struct kvm_irq_level l = {.irq = arch_irq_line_arg(irq), .level = (uint32_t)level};

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &l);
}

static void irq_set(void *opaque, unsigned int irq, int level)
{
	vm_irq_line(opaque, irq, level);
}

struct irq_line vm_irq(struct vm *vm, unsigned int irq)
{
	return (struct irq_line){irq_set, vm, irq};
}

static void ctl_request_exit(void *opaque, int status, const char *reason)
{
	vm_request_exit(opaque, status, "%s", reason);
}

static double ctl_elapsed_ms(void *opaque)
{
	return vm_elapsed_ms(opaque);
}

struct vm_control vm_control(struct vm *vm)
{
	return (struct vm_control){ctl_request_exit, ctl_elapsed_ms, vm};
}

static int map_memory(struct vm *vm, uint64_t size, struct kerr *err)
{
	struct guest_mem_region layout[GUEST_MEM_MAX_REGIONS];
	int n = arch_ram_layout(size, layout, GUEST_MEM_MAX_REGIONS);

	if (n <= 0)
		return kerr_set(err, "cannot lay out %llu MiB of guest memory",
				(unsigned long long)(size >> 20));
	if (guest_mem_map(&vm->mem, layout, n, err))
		return -1;
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		const struct guest_mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region kr = {
		    .slot = (uint32_t)i,
		    .guest_phys_addr = r->gpa,
		    .memory_size = r->size,
		    .userspace_addr = (uint64_t)(uintptr_t)r->host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0)
			return kerr_set(err, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
	}
	return 0;
}

static int create_vcpus(struct vm *vm, struct kerr *err)
{
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);

	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max > 0 && vm->nr_cpus > (unsigned int)max)
		return kerr_set(err, "--cpus %u is more than this host's KVM allows (%d)",
				vm->nr_cpus, max);
	vm->vcpus = calloc(vm->nr_cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return kerr_set(err, "out of memory for vCPUs");
	for (unsigned int i = 0; i < vm->nr_cpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned int i = 0; i < vm->nr_cpus; i++)
		if (vcpu_create(vm, &vm->vcpus[i], i, err) ||
		    arch_vcpu_init(vm->arch, vm->vcpus[i].fd, i, err))
			return -1;

	/* The coalesced-write ring: a page of every vCPU's run mapping (the same page in all). */
	long page = sysconf(_SC_PAGESIZE);
	int off = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
	bool pio = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) > 0;
	void *ring = NULL;
	if (page > 0 && off > 0 && pio && (long)(off + 1) * page <= vm->vcpu_mmap_size)
		ring = (char *)vm->vcpus[0].run + (long)off * page;
	coalesced_io_set_ring(&vm->coalesced, ring, page > 0 ? (size_t)page : 0);
	return 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg, struct kerr *err)
{
	memset(vm, 0, sizeof(*vm));
	clock_gettime(CLOCK_MONOTONIC, &vm->start);
	vm->kvm_fd = vm->vm_fd = vm->exit_fd = -1;
	vm->loop.epfd = vm->loop.stop_fd = vm->loop.call_fd = -1;
	vm->net_loop.epfd = vm->net_loop.stop_fd = vm->net_loop.call_fd = -1;
	vm->net_rx_loop.epfd = vm->net_rx_loop.stop_fd = vm->net_rx_loop.call_fd = -1;
	vm->nr_cpus = cfg->cpus;
	vm->verbose = cfg->verbose;
	pthread_mutex_init(&vm->exit_lock, NULL);
	coalesced_io_init(&vm->coalesced); /* before anything can fail: vm_destroy destroys it */

	vm->exit_fd = eventfd(0, EFD_CLOEXEC);
	if (vm->exit_fd < 0)
		return kerr_set(err, "eventfd: %s", strerror(errno));
	vm->kvm_fd = kvm_dev_open(KVM_DEV_PATH, err);
	if (vm->kvm_fd < 0)
		return -1;
	if (arch_check_kvm(vm->kvm_fd, err))
		return -1;
	vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->vcpu_mmap_size <= 0)
		return kerr_set(err, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return kerr_set(err, "KVM_CREATE_VM: %s", strerror(errno));
	/* vCPUs before devices: arch_vcpus_created may reset what devices set up in KVM. */
	if (arch_vm_create(&vm->arch, vm->kvm_fd, vm->vm_fd, vm->nr_cpus, cfg->its, err) ||
	    map_memory(vm, cfg->memory, err) || create_vcpus(vm, err) ||
	    arch_vcpus_created(vm->arch, err) || event_loop_init(&vm->loop, err) ||
	    event_loop_init(&vm->net_loop, err) || event_loop_init(&vm->net_rx_loop, err))
		return -1;
	vm->loop.name = "loop-main";
	vm->net_loop.name = "loop-net";
	vm->net_rx_loop.name = "loop-net-rx";
	vm->net_loop.batch = true;
	if (platform_create(&vm->platform, vm, err) || pci_devices_create(vm, cfg, err))
		return -1;
	return 0;
}

bool vm_power_button(struct vm *vm)
{
	if (!vm->power_button)
		return false;
	platform_power_button(vm->platform);
	return true;
}

/* --dump-dtb: the blob as the guest got it, for `dtc -I dtb`. */
static int dump_dtb(const char *path, const uint8_t *dtb, size_t len, struct kerr *err)
{
	FILE *f;

	if (!dtb)
		return kerr_set(err,
				"--dump-dtb: this architecture describes the machine with ACPI "
				"tables, not a device tree");
	f = fopen(path, "wb");
	if (!f)
		return kerr_set(err, "--dump-dtb %s: %s", path, strerror(errno));
	if (fwrite(dtb, 1, len, f) != len) {
		fclose(f);
		return kerr_set(err, "--dump-dtb %s: write failed", path);
	}
	if (fclose(f))
		return kerr_set(err, "--dump-dtb %s: %s", path, strerror(errno));
	return 0;
}

int vm_load_kernel(struct vm *vm, const struct vm_config *cfg, struct kerr *err)
{
	struct file_map kernel = {0}, initrd = {0};
	struct arch_mmio_dev mmio[PCI_DEVICES_MAX];
	struct kernel_cache kcache;
	size_t cap = arch_layout.cmdline_max;
	char *cmdline = malloc(cap);
	int rc = -1;

	if (!cmdline)
		return kerr_set(err, "out of memory");
	/* The loader checks the length against what the kernel takes; this is only our buffer. */
	if (strlen(cfg->cmdline) >= cap) {
		kerr_set(err, "--cmdline is longer than %zu bytes", cap - 1);
		goto out;
	}
	strcpy(cmdline, cfg->cmdline);
	struct arch_boot b = {.nr_cpus = vm->nr_cpus, .mmio = mmio, .cmdline = cmdline};
	for (unsigned int i = 0; i < vm->pci.nr; i++) {
		const struct virtio_mmio *m = vm->pci.mmios[i];
		if (!m)
			continue;
		mmio[b.nr_mmio++] = (struct arch_mmio_dev){
		    .base = m->base, .size = VIRTIO_MMIO_WINDOW, .irq = m->gsi};
		if (cfg->mmio_cmdline && virtio_mmio_cmdline_append(m, cmdline, cap)) {
			kerr_set(err, "the virtio-mmio declarations do not fit the command line "
				      "(--mmio-cmdline)");
			goto out;
		}
	}
	b.acpi = cfg->acpi == ACPI_ON || (cfg->acpi == ACPI_AUTO && vm->pci.nr_mmio > 0);

	if (file_map_open(&kernel, cfg->kernel_path, "kernel", err))
		goto out;
	if (cfg->initrd_path && file_map_open(&initrd, cfg->initrd_path, "initrd", err))
		goto out;
	b.kernel = kernel.data;
	b.kernel_len = kernel.len;
	b.initrd = initrd.data;
	b.initrd_len = initrd.len;
	b.unpack_in_guest = cfg->kernel_unpack == KERNEL_UNPACK_GUEST;
	kernel_cache_init(&kcache);
	if (cfg->kernel_cache && !b.unpack_in_guest)
		b.cache = &kcache.ops;
	rc = arch_boot(vm->arch, &vm->mem, &b, vm->vcpus[0].fd, err);
	if (rc == 0 && vm->verbose && b.note[0])
		fprintf(stderr, "kestrel: %s\n", b.note);
	if (rc == 0 && vm->verbose && kcache.note[0])
		fprintf(stderr, "kestrel: %s\n", kcache.note);
	vm->power_button = b.power_button;
	if (rc == 0 && cfg->dump_dtb)
		rc = dump_dtb(cfg->dump_dtb, b.dtb, b.dtb_len, err);
	free(b.dtb);
out:
	file_map_close(&initrd);
	file_map_close(&kernel);
	free(cmdline);
	return rc;
}

int vm_start(struct vm *vm, struct kerr *err)
{
	if (vcpu_init_signals(err) || event_loop_start(&vm->loop, err) ||
	    (vm->pci.nr_nics &&
	     (event_loop_start(&vm->net_loop, err) || event_loop_start(&vm->net_rx_loop, err))))
		return -1;
	for (unsigned int i = 0; i < vm->nr_cpus; i++)
		if (vcpu_start(&vm->vcpus[i], err))
			return -1;
	return 0;
}

int vm_wait(struct vm *vm)
{
	uint64_t v;

	while (read(vm->exit_fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	for (unsigned int i = 0; i < vm->nr_cpus; i++)
		vcpu_stop(&vm->vcpus[i]);
	event_loop_stop(&vm->loop);
	event_loop_stop(&vm->net_loop);
	event_loop_stop(&vm->net_rx_loop);
	platform_finish(vm->platform);
	return vm->exit_status;
}

void vm_destroy(struct vm *vm)
{
	coalesced_io_destroy(&vm->coalesced); /* its ring is in the vCPUs' run mappings */
	if (vm->vcpus) {
		for (unsigned int i = 0; i < vm->nr_cpus; i++)
			if (vm->vcpus[i].vm)
				vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	pci_devices_destroy(vm);
	platform_destroy(vm->platform);
	vm->platform = NULL;
	event_loop_destroy(&vm->loop);
	event_loop_destroy(&vm->net_loop);
	event_loop_destroy(&vm->net_rx_loop);
	guest_mem_unmap(&vm->mem);
	arch_vm_destroy(vm->arch);
	vm->arch = NULL;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->exit_fd >= 0)
		close(vm->exit_fd);
	vm->vm_fd = vm->kvm_fd = vm->exit_fd = -1;
	pthread_mutex_destroy(&vm->exit_lock);
}
