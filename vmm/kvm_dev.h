/* Opening /dev/kvm with errors a user can act on. */
#ifndef KESTREL_KVM_DEV_H
#define KESTREL_KVM_DEV_H

#include <stddef.h>

#include "vmm/error.h"

#define KVM_DEV_PATH "/dev/kvm"

/* Opens path (normally KVM_DEV_PATH) and checks the KVM API version; returns the fd or -1. */
int kvm_dev_open(const char *path, struct kerr *err);

struct kvm_cap_need {
	int cap;
	const char *name;
};

/* Checks each capability; names the first one missing (and that a newer kernel has it). */
int kvm_check_caps(int kvm_fd, const struct kvm_cap_need *caps, size_t n, struct kerr *err);

#endif
