/* One thread per vCPU: KVM_RUN and exit dispatch. */
#ifndef KESTREL_VCPU_H
#define KESTREL_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>

#include "vmm/error.h"
#include "vmm/thread.h"

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	struct kthread thread;
	bool started;
};

int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned int id, struct kerr *err);
int vcpu_start(struct vcpu *vcpu, struct kerr *err);
/* Kicks the thread out of KVM_RUN (the VM is ending) and joins it. */
void vcpu_stop(struct vcpu *vcpu);
void vcpu_destroy(struct vcpu *vcpu);

/* Installs the no-op signal used to kick vCPU threads; call once before starting any. */
int vcpu_init_signals(struct kerr *err);

#endif
