/*
 * The VM: the KVM handles, guest memory, the I/O buses and the vCPU threads, and how the VM
 * ends. vmm/ wires arch/ and devices/ together here; devices only see the pieces they need.
 */
#ifndef KESTREL_VM_H
#define KESTREL_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "devices/irq.h"
#include "devices/vm_control.h"
#include "vmm/coalesced_io.h"
#include "vmm/config.h"
#include "vmm/error.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"
#include "vmm/io_bus.h"
#include "vmm/pci_devices.h"

/* Exit statuses of the kestrel process (docs/cli.md). Debug exits are odd: (value << 1) | 1. */
enum kestrel_exit {
	KESTREL_EXIT_REBOOT = 0,   /* guest reset through the i8042, or the user quit */
	KESTREL_EXIT_INTERNAL = 1, /* kestrel failed after the guest started (not a guest act) */
	KESTREL_EXIT_USAGE = 2,	   /* bad option, missing file, no /dev/kvm... */
	KESTREL_EXIT_TRIPLE_FAULT = 4,	/* the guest triple-faulted (KVM_EXIT_SHUTDOWN) */
	KESTREL_EXIT_KVM_ERROR = 6,	/* KVM could not run the guest (entry failure, emulation) */
	KESTREL_EXIT_SECCOMP = 8,	/* a thread made a system call its seccomp filter forbids */
	KESTREL_EXIT_SIGNAL_BASE = 128, /* killed by signal N: 128 + N, as shells report it */
};

struct vcpu;
struct arch_vm;
struct platform;

/* Presses the guest's power button; false when it has none (e.g. --acpi off on x86). */
bool vm_power_button(struct vm *vm);

struct vm {
	int kvm_fd;
	int vm_fd;
	int vcpu_mmap_size;
	struct guest_mem mem;
	struct io_bus pio;
	struct io_bus mmio;
	struct coalesced_io coalesced; /* port writes KVM queues instead of exiting */
	struct event_loop loop;	       /* terminal, console, disks */
	struct event_loop net_loop;    /* NICs: SCHED_BATCH, started only when there are NICs */
	/* NICs' tap input and RX-queue kicks: an ordinary thread, so that frames for a guest that
	 * waits for them do not wait for a busy host process's time slice (docs/performance.md,
	 * Network). */
	struct event_loop net_rx_loop;
	unsigned int nr_cpus;
	struct vcpu *vcpus;
	bool verbose;
	struct timespec start; /* process start, for timing logs */

	struct arch_vm *arch;	   /* the architecture's part (arch/arch.h) */
	struct platform *platform; /* the devices every guest gets (vmm/platform.h) */
	bool power_button;	   /* the guest knows a power button (vm_load_kernel) */
	struct pci_devices pci;	   /* the PCI bus and the virtio devices on it */

	/* How the VM ends: the first vm_request_exit() wins; later calls are ignored. */
	pthread_mutex_t exit_lock;
	bool exiting;
	int exit_status;
	char exit_reason[256];
	int exit_fd; /* eventfd the main thread waits on */
};

int vm_create(struct vm *vm, const struct vm_config *cfg, struct kerr *err);
int vm_load_kernel(struct vm *vm, const struct vm_config *cfg, struct kerr *err);
int vm_start(struct vm *vm, struct kerr *err);
/* Blocks until the VM ends; returns the process exit status and leaves the reason in vm. */
int vm_wait(struct vm *vm);
void vm_destroy(struct vm *vm);

/* Any thread: ends the VM with status and a one-line reason (first caller wins). */
void vm_request_exit(struct vm *vm, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Raises or lowers a line on the in-kernel interrupt controller. */
int vm_irq_line(struct vm *vm, unsigned int irq, int level);

/* What a device gets instead of the VM: its interrupt line, and a way to end the VM. */
struct irq_line vm_irq(struct vm *vm, unsigned int irq);
struct vm_control vm_control(struct vm *vm);

/* Milliseconds since process start. */
double vm_elapsed_ms(const struct vm *vm);

#endif
