#include "vmm/vm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/x86/acpi.h"
#include "arch/x86/boot.h"
#include "arch/x86/cpu.h"
#include "arch/x86/layout.h"
#include "virtio/mmio.h"
#include "vmm/file_map.h"
#include "vmm/kvm_dev.h"
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
	struct kvm_irq_level l = {.irq = irq, .level = (uint32_t)level};

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &l);
}

static void irq_set(void *opaque, unsigned int irq, int level)
{
	vm_irq_line(opaque, irq, level);
}

static void ctl_request_exit(void *opaque, int status, const char *reason)
{
	vm_request_exit(opaque, status, "%s", reason);
}

static double ctl_elapsed_ms(void *opaque)
{
	return vm_elapsed_ms(opaque);
}

static int register_pc_devices(struct vm *vm, struct kerr *err)
{
	struct vm_control ctl = {ctl_request_exit, ctl_elapsed_ms, vm};

	uart_init(&vm->uart, STDOUT_FILENO, (struct irq_line){irq_set, vm, UART_COM1_IRQ});
	i8042_init(&vm->i8042, ctl);
	debug_port_init(&vm->debug, ctl, STDERR_FILENO);
	cmos_rtc_init(&vm->rtc);
	acpi_pm_init(&vm->pm, ctl, (struct irq_line){irq_set, vm, X86_ACPI_GED_GSI});
	if (io_bus_register(&vm->pio, X86_ACPI_PM_PORT, ACPI_PM_LEN, acpi_pm_io, &vm->pm, "acpi-pm",
			    err) ||
	    io_bus_register(&vm->pio, X86_ACPI_GED_PORT, ACPI_GED_LEN, acpi_ged_io, &vm->pm,
			    "acpi-ged", err) ||
	    io_bus_register(&vm->pio, UART_COM1_BASE, UART_NR_REGS, uart_io, &vm->uart, "uart",
			    err) ||
	    io_bus_register(&vm->pio, I8042_DATA_PORT, 1, i8042_data_io, &vm->i8042, "i8042",
			    err) ||
	    io_bus_register(&vm->pio, I8042_CMD_PORT, 1, i8042_cmd_io, &vm->i8042, "i8042", err) ||
	    io_bus_register(&vm->pio, DEBUG_PORT_BASE, DEBUG_PORT_LEN, debug_port_io, &vm->debug,
			    "debug-port", err) ||
	    io_bus_register(&vm->pio, CMOS_RTC_PORT, CMOS_RTC_LEN, cmos_rtc_io, &vm->rtc, "rtc",
			    err))
		return -1;
	return 0;
}

static int map_memory(struct vm *vm, uint64_t size, struct kerr *err)
{
	struct guest_mem_region layout[2];
	int n = x86_ram_layout(size, layout);

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
	struct kvm_cpuid2 *cpuid;
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	int rc = -1;

	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max > 0 && vm->nr_cpus > (unsigned int)max)
		return kerr_set(err, "--cpus %u is more than this host's KVM allows (%d)",
				vm->nr_cpus, max);
	cpuid = x86_supported_cpuid(vm->kvm_fd, err);
	if (!cpuid)
		return -1;
	vm->vcpus = calloc(vm->nr_cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		kerr_set(err, "out of memory for vCPUs");
		goto out;
	}
	for (unsigned int i = 0; i < vm->nr_cpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned int i = 0; i < vm->nr_cpus; i++) {
		if (vcpu_create(vm, &vm->vcpus[i], i, err) ||
		    x86_vcpu_init(vm->vcpus[i].fd, i, vm->nr_cpus, cpuid, err))
			goto out;
	}
	rc = 0;
out:
	free(cpuid);
	return rc;
}

int vm_create(struct vm *vm, const struct vm_config *cfg, struct kerr *err)
{
	memset(vm, 0, sizeof(*vm));
	clock_gettime(CLOCK_MONOTONIC, &vm->start);
	vm->kvm_fd = vm->vm_fd = vm->exit_fd = -1;
	vm->loop.epfd = vm->loop.stop_fd = vm->loop.call_fd = -1;
	vm->nr_cpus = cfg->cpus;
	vm->verbose = cfg->verbose;
	pthread_mutex_init(&vm->exit_lock, NULL);

	vm->exit_fd = eventfd(0, EFD_CLOEXEC);
	if (vm->exit_fd < 0)
		return kerr_set(err, "eventfd: %s", strerror(errno));
	vm->kvm_fd = kvm_dev_open(KVM_DEV_PATH, err);
	if (vm->kvm_fd < 0)
		return -1;
	if (x86_check_kvm(vm->kvm_fd, err))
		return -1;
	vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->vcpu_mmap_size <= 0)
		return kerr_set(err, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return kerr_set(err, "KVM_CREATE_VM: %s", strerror(errno));
	if (x86_vm_init(vm->vm_fd, err) || map_memory(vm, cfg->memory, err) ||
	    event_loop_init(&vm->loop, err) || register_pc_devices(vm, err) ||
	    pci_devices_create(vm, cfg, err) || create_vcpus(vm, err))
		return -1;
	return 0;
}

/* The machine as ACPI describes it: the same devices the MP table and e820 map announce. */
static int write_acpi(struct vm *vm, uint64_t *rsdp, struct kerr *err)
{
	struct x86_acpi_mmio_dev mmio[X86_VIRTIO_MMIO_MAX];
	struct x86_acpi_desc d = {
	    .nr_cpus = vm->nr_cpus,
	    .lapic_addr = X86_LAPIC_ADDR,
	    .ioapic_addr = X86_IOAPIC_ADDR,
	    .ioapic_id = (uint8_t)vm->nr_cpus,
	    .pci = {.present = true,
		    .ecam_base = X86_PCI_ECAM_BASE,
		    .mmio32_base = (uint32_t)PCI_MMIO32_BASE,
		    .mmio32_size = (uint32_t)PCI_MMIO32_SIZE,
		    .intx_gsi = x86_acpi_default_intx_gsi},
	    .uart = {.present = true, .port = UART_COM1_BASE, .gsi = UART_COM1_IRQ},
	    .mmio = mmio,
	    .ged = {.present = true,
		    .space = X86_ACPI_SPACE_IO,
		    .addr = X86_ACPI_GED_PORT,
		    .gsi = X86_ACPI_GED_GSI},
	    .pm_port = X86_ACPI_PM_PORT,
	};

	for (unsigned int i = 0; i < vm->pci.nr; i++)
		if (vm->pci.mmios[i])
			mmio[d.nr_mmio++] =
			    (struct x86_acpi_mmio_dev){.base = vm->pci.mmios[i]->base,
						       .size = VIRTIO_MMIO_WINDOW,
						       .gsi = vm->pci.mmios[i]->gsi,
						       .level = true};
	return x86_write_acpi(&vm->mem, &d, rsdp, err);
}

bool vm_power_button(struct vm *vm)
{
	if (!vm->acpi)
		return false;
	acpi_pm_power_button(&vm->pm);
	return true;
}

int vm_load_kernel(struct vm *vm, const struct vm_config *cfg, struct kerr *err)
{
	struct file_map kernel = {0}, initrd = {0};
	struct x86_boot boot;
	char cmdline[X86_CMDLINE_MAX];
	int rc = -1;

	/* The loader checks the length against what the kernel takes; this is only our buffer. */
	if (strlen(cfg->cmdline) >= sizeof(cmdline))
		return kerr_set(err, "--cmdline is longer than %llu bytes",
				(unsigned long long)sizeof(cmdline) - 1);
	strcpy(cmdline, cfg->cmdline);
	for (unsigned int i = 0; cfg->mmio_cmdline && i < vm->pci.nr; i++)
		if (vm->pci.mmios[i] &&
		    virtio_mmio_cmdline_append(vm->pci.mmios[i], cmdline, sizeof(cmdline)))
			return kerr_set(err, "the virtio-mmio declarations do not fit the command "
					     "line (--mmio-cmdline)");

	vm->acpi = cfg->acpi == ACPI_ON || (cfg->acpi == ACPI_AUTO && vm->pci.nr_mmio > 0);
	uint64_t rsdp = 0;
	if (vm->acpi && write_acpi(vm, &rsdp, err))
		return -1;

	if (file_map_open(&kernel, cfg->kernel_path, "kernel", err))
		return -1;
	if (cfg->initrd_path && file_map_open(&initrd, cfg->initrd_path, "initrd", err))
		goto out;
	struct x86_boot_config bc = {
	    .kernel = kernel.data,
	    .kernel_len = kernel.len,
	    .initrd = initrd.data,
	    .initrd_len = initrd.len,
	    .cmdline = cmdline,
	    .acpi_rsdp = rsdp,
	};
	if (x86_load_kernel(&vm->mem, &bc, &boot, err))
		goto out;
	if (x86_write_boot_tables(&vm->mem, err) || x86_write_mptable(&vm->mem, vm->nr_cpus, err) ||
	    x86_vcpu_set_entry(vm->vcpus[0].fd, &boot, err))
		goto out;
	rc = 0;
out:
	file_map_close(&initrd);
	file_map_close(&kernel);
	return rc;
}

int vm_start(struct vm *vm, struct kerr *err)
{
	if (vcpu_init_signals(err) || event_loop_start(&vm->loop, err))
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
	debug_port_finish(&vm->debug);
	return vm->exit_status;
}

void vm_destroy(struct vm *vm)
{
	if (vm->vcpus) {
		for (unsigned int i = 0; i < vm->nr_cpus; i++)
			if (vm->vcpus[i].vm)
				vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	pci_devices_destroy(vm);
	event_loop_destroy(&vm->loop);
	guest_mem_unmap(&vm->mem);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->exit_fd >= 0)
		close(vm->exit_fd);
	vm->vm_fd = vm->kvm_fd = vm->exit_fd = -1;
	uart_destroy(&vm->uart);
	i8042_destroy(&vm->i8042);
	cmos_rtc_destroy(&vm->rtc);
	acpi_pm_destroy(&vm->pm);
	pthread_mutex_destroy(&vm->exit_lock);
}
