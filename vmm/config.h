/* The VM as the user asked for it on the command line. Parsing never exits the process. */
#ifndef KESTREL_CONFIG_H
#define KESTREL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/arch.h"
#include "vmm/error.h"

#define KESTREL_DEFAULT_MEMORY (256ULL << 20)
#define KESTREL_MIN_MEMORY (32ULL << 20)
#define KESTREL_MAX_MEMORY (1ULL << 40)
#define KESTREL_MAX_CPUS 254 /* APIC IDs 0..253; the IOAPIC takes the next ID */
#define KESTREL_DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=1"
#define KESTREL_DEFAULT_CMDLINE_VIRTIO "console=hvc0 reboot=k panic=1"

#define KESTREL_DEFAULT_SHUTDOWN_TIMEOUT 30
#define KESTREL_MAX_DISKS 16
#define KESTREL_MAX_PORTS 16
#define KESTREL_MAX_DISK_QUEUES 16

/* Which bus carries a virtio device. DEFAULT resolves to --transport (pci unless given). */
enum transport_kind { TRANSPORT_DEFAULT, TRANSPORT_PCI, TRANSPORT_MMIO };

struct disk_config {
	char *path;
	enum transport_kind transport;
	bool readonly;
	bool direct;
	unsigned int num_queues;
};

struct serial_port_config {
	char *name;
	char *socket;
};

#define KESTREL_MAX_NICS 8
#define KESTREL_MAX_NET_QUEUES 16

enum net_vhost_choice { NET_CHOICE_AUTO, NET_CHOICE_ON, NET_CHOICE_OFF };

struct net_config {
	char *tap; /* tap=NAME */
	int fd;	   /* fd=N, or -1 */
	uint8_t mac[6];
	bool mac_set;
	unsigned int mtu; /* 0: default */
	unsigned int queues;
	enum net_vhost_choice vhost;
	enum transport_kind transport;
};

enum console_kind {
	CONSOLE_SERIAL, /* the 8250 UART (ttyS0) is the console */
	CONSOLE_VIRTIO, /* virtio-console port 0 (hvc0) is the console */
};

struct vm_config {
	const char *kernel_path;
	const char *initrd_path; /* NULL: none */
	const char *cmdline;
	uint64_t memory;
	unsigned int cpus;
	enum console_kind console;
	enum transport_kind console_transport; /* virtio-console and its named ports */
	enum transport_kind transport;	       /* --transport: the default for every device */
	struct disk_config disks[KESTREL_MAX_DISKS];
	unsigned int nr_disks;
	struct serial_port_config ports[KESTREL_MAX_PORTS];
	unsigned int nr_ports;
	struct net_config nics[KESTREL_MAX_NICS];
	unsigned int nr_nics;
	enum acpi_choice {
		ACPI_AUTO,
		ACPI_ON,
		ACPI_OFF
	} acpi;			       /* default on; auto: on with a virtio-mmio device */
	unsigned int shutdown_timeout; /* seconds the guest gets to power off after SIGTERM */
	bool mmio_cmdline;	  /* declare virtio-mmio devices on the kernel command line too */
	enum arch_its_choice its; /* --its (arm64): PCI MSIs through a GIC ITS, or INTx */
	const char *dump_dtb;	  /* write the guest's device tree here (arm64); NULL: no */
	enum kernel_unpack {
		KERNEL_UNPACK_HOST, /* kestrel decompresses what it can (default) */
		KERNEL_UNPACK_GUEST /* a bzImage decompresses itself in the guest */
	} kernel_unpack;
	bool kernel_cache; /* keep unpacked kernels on disk (on unless --kernel-cache off) */
	bool seccomp;	   /* per-thread system call filters (on unless --seccomp=off) */
	bool verbose;
	bool help;
	bool version;
};

/*
 * Parses argv into cfg. Returns 0 on success, -1 with a one-line message in err on a user
 * mistake. argv is not modified; kernel/initrd/cmdline point into it, key=value option
 * values are copies released by config_free().
 */
int config_parse(int argc, char *const argv[], struct vm_config *cfg, struct kerr *err);
/* Frees the strings config_parse copied out of key=value options. */
void config_free(struct vm_config *cfg);

/* "512M", "2G", "1048576", "64K": bytes, or -1 with a message naming what was wrong. */
int config_parse_size(const char *s, uint64_t *out, struct kerr *err);

const char *config_usage(void);

#endif
