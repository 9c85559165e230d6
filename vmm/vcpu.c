#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/seccomp.h"
#include "vmm/vm.h"

/* SIGUSR1 interrupts KVM_RUN so a vCPU thread notices that the VM is ending. */
#define VCPU_KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu_init_signals(struct kerr *err)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN must return EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0)
		return kerr_set(err, "sigaction: %s", strerror(errno));
	return 0;
}

int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned int id, struct kerr *err)
{
	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0)
		return kerr_set(err, "KVM_CREATE_VCPU %u: %s", id, strerror(errno));
	vcpu->run =
	    mmap(NULL, (size_t)vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		int e = errno;
		close(vcpu->fd);
		vcpu->fd = -1;
		vcpu->run = NULL;
		return kerr_set(err, "mmap of vCPU %u run area: %s", id, strerror(e));
	}
	return 0;
}

static void handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	/* String I/O (rep outsb...) arrives as count consecutive accesses of one size. */
	for (uint32_t i = 0; i < run->io.count; i++) {
		io_bus_dispatch(&vcpu->vm->pio, run->io.port, data, run->io.size, is_write);
		data += run->io.size;
	}
}

static void handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	unsigned int len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		len = sizeof(run->mmio.data);
	io_bus_dispatch(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, len,
			run->mmio.is_write);
}

/* Returns false when the VM must end because of this exit. */
static bool handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct vm *vm = vcpu->vm;

	/* Writes KVM queued (to index ports) happened before this exit: apply them first. */
	coalesced_io_drain(&vm->coalesced, &vm->pio, &vm->mmio);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(vcpu);
		return true;
	case KVM_EXIT_MMIO:
		handle_mmio(vcpu);
		return true;
	case KVM_EXIT_HLT:
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SHUTDOWN:
		vm_request_exit(vm, KESTREL_EXIT_TRIPLE_FAULT, "vCPU %u triple-faulted", vcpu->id);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			vm_request_exit(vm, KESTREL_EXIT_REBOOT, "guest requested a reset");
		else
			vm_request_exit(vm, KESTREL_EXIT_REBOOT, "guest requested a power-off");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		vm_request_exit(vm, KESTREL_EXIT_KVM_ERROR,
				"KVM could not enter vCPU %u (hardware reason 0x%llx)", vcpu->id,
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		vm_request_exit(vm, KESTREL_EXIT_KVM_ERROR,
				"KVM internal error on vCPU %u (suberror %u)", vcpu->id,
				run->internal.suberror);
		return false;
	default:
		vm_request_exit(vm, KESTREL_EXIT_KVM_ERROR, "unhandled KVM exit %u on vCPU %u",
				run->exit_reason, vcpu->id);
		return false;
	}
}

static bool vm_is_exiting(struct vm *vm)
{
	return __atomic_load_n(&vm->exiting, __ATOMIC_ACQUIRE);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", vcpu->id);
	pthread_setname_np(pthread_self(), name);
	if (vcpu->id == 0 && vm->verbose)
		fprintf(stderr, "kestrel: first KVM_RUN %.3f ms after start\n", vm_elapsed_ms(vm));
	if (sandbox_enter(SANDBOX_VCPU))
		return NULL;
	while (!vm_is_exiting(vm)) {
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vcpu->run->immediate_exit = 0;
				continue;
			}
			vm_request_exit(vm, KESTREL_EXIT_KVM_ERROR, "KVM_RUN on vCPU %u: %s",
					vcpu->id, strerror(errno));
			break;
		}
		if (!handle_exit(vcpu))
			break;
	}
	return NULL;
}

int vcpu_start(struct vcpu *vcpu, struct kerr *err)
{
	int rc = kthread_start(&vcpu->thread, vcpu_thread, vcpu);

	if (rc)
		return kerr_set(err, "cannot start vCPU %u thread: %s", vcpu->id, strerror(rc));
	vcpu->started = true;
	return 0;
}

void vcpu_stop(struct vcpu *vcpu)
{
	if (!vcpu->started)
		return;
	/* immediate_exit covers the window between the exiting check and KVM_RUN. */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_RELEASE);
	pthread_kill(vcpu->thread.id, VCPU_KICK_SIGNAL);
	kthread_join(&vcpu->thread);
	vcpu->started = false;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	vcpu_stop(vcpu);
	if (vcpu->run)
		munmap(vcpu->run, (size_t)vcpu->vm->vcpu_mmap_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}
