#include "vmm/kvm_dev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int kvm_dev_open(const char *path, struct kerr *err)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	int version;

	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return kerr_set(err,
					"cannot open %s: %s (load the kvm module, or run "
					"inside a host with virtualization enabled)",
					path, strerror(e));
		if (e == EACCES || e == EPERM)
			return kerr_set(err,
					"cannot open %s: %s (add your user to the 'kvm' "
					"group or run as root)",
					path, strerror(e));
		return kerr_set(err, "cannot open %s: %s", path, strerror(e));
	}
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version < 0) {
		kerr_set(err, "%s is not a KVM device (KVM_GET_API_VERSION: %s)", path,
			 strerror(errno));
		goto fail;
	}
	if (version != KVM_API_VERSION) {
		kerr_set(err, "%s speaks KVM API version %d; kestrel needs %d", path, version,
			 KVM_API_VERSION);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int kvm_check_caps(int kvm_fd, const struct kvm_cap_need *caps, size_t n, struct kerr *err)
{
	for (size_t i = 0; i < n; i++)
		if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0)
			return kerr_set(err,
					"this host's KVM lacks %s, which kestrel needs "
					"(a newer host kernel has it)",
					caps[i].name);
	return 0;
}
