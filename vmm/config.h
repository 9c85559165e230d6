/* The VM as the user asked for it on the command line. Parsing never exits the process. */
#ifndef KESTREL_CONFIG_H
#define KESTREL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/error.h"

#define KESTREL_DEFAULT_MEMORY (256ULL << 20)
#define KESTREL_MIN_MEMORY (32ULL << 20)
#define KESTREL_MAX_MEMORY (1ULL << 40)
#define KESTREL_MAX_CPUS 254 /* APIC IDs 0..253; the IOAPIC takes the next ID */
#define KESTREL_DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=1"

struct vm_config {
	const char *kernel_path;
	const char *initrd_path; /* NULL: none */
	const char *cmdline;
	uint64_t memory;
	unsigned int cpus;
	bool verbose;
	bool help;
	bool version;
};

/*
 * Parses argv into cfg. Returns 0 on success, -1 with a one-line message in err on a user
 * mistake. argv is not modified; strings in cfg point into it.
 */
int config_parse(int argc, char *const argv[], struct vm_config *cfg, struct kerr *err);

/* "512M", "2G", "1048576", "64K": bytes, or -1 with a message naming what was wrong. */
int config_parse_size(const char *s, uint64_t *out, struct kerr *err);

const char *config_usage(void);

#endif
