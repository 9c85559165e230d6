/* Opening /dev/kvm with errors a user can act on. */
#ifndef KESTREL_KVM_DEV_H
#define KESTREL_KVM_DEV_H

#include "vmm/error.h"

#define KVM_DEV_PATH "/dev/kvm"

/* Opens path (normally KVM_DEV_PATH) and checks the KVM API version; returns the fd or -1. */
int kvm_dev_open(const char *path, struct kerr *err);

#endif
