// kvmcaps: what a test host's /dev/kvm offers, one "NAME value" line each, for the arm64
// rig test (tests/e2e/test_arm64_rig.sh) and for diagnosing a new test host. Static, no
// arch code: every constant below is in the generic <linux/kvm.h>. Device lines are
// "dev-NAME 1" when KVM_CREATE_DEVICE_TEST accepts that in-kernel device type, else 0.
// Exits 1 when /dev/kvm cannot be opened or no VM can be created.
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const struct {
	const char *name;
	int cap;
} caps[] = {
    {"cap-nr-vcpus", KVM_CAP_NR_VCPUS},
    {"cap-max-vcpus", KVM_CAP_MAX_VCPUS},
    {"cap-irqchip", KVM_CAP_IRQCHIP},
    {"cap-ioeventfd", KVM_CAP_IOEVENTFD},
    {"cap-irqfd", KVM_CAP_IRQFD},
    {"cap-irq-routing", KVM_CAP_IRQ_ROUTING},
    {"cap-signal-msi", KVM_CAP_SIGNAL_MSI},
    {"cap-msi-devid", KVM_CAP_MSI_DEVID},
    {"cap-arm-psci-0.2", KVM_CAP_ARM_PSCI_0_2},
    {"cap-arm-vm-ipa-size", KVM_CAP_ARM_VM_IPA_SIZE},
    {"cap-one-reg", KVM_CAP_ONE_REG},
    {"cap-device-ctrl", KVM_CAP_DEVICE_CTRL},
};

static const struct {
	const char *name;
	unsigned int type;
} devs[] = {
    {"dev-arm-vgic-v2", KVM_DEV_TYPE_ARM_VGIC_V2},
    {"dev-arm-vgic-v3", KVM_DEV_TYPE_ARM_VGIC_V3},
    {"dev-arm-vgic-its", KVM_DEV_TYPE_ARM_VGIC_ITS},
};

int main(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("kvmcaps: /dev/kvm");
		return 1;
	}
	printf("api-version %d\n", ioctl(kvm, KVM_GET_API_VERSION, 0));
	// Capabilities asked of the VM where it answers them (per-VM limits, e.g. vCPUs).
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		perror("kvmcaps: KVM_CREATE_VM");
		return 1;
	}
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		printf("%s %d\n", caps[i].name, ioctl(vm, KVM_CHECK_EXTENSION, caps[i].cap));
	for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		struct kvm_create_device cd = {.type = devs[i].type,
					       .flags = KVM_CREATE_DEVICE_TEST};
		printf("%s %d\n", devs[i].name, ioctl(vm, KVM_CREATE_DEVICE, &cd) == 0);
	}
	close(vm);
	close(kvm);
	return 0;
}
