#include "vmm/config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int config_parse_size(const char *s, uint64_t *out, struct kerr *err)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	if (!s || !isdigit((unsigned char)s[0]))
		return kerr_set(err,
				"bad size '%s': expected a number with an optional K, M or G "
				"suffix, e.g. 512M",
				s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return kerr_set(err, "bad size '%s': number too large", s);
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		end++;
		break;
	case 'M':
		shift = 20;
		end++;
		break;
	case 'G':
		shift = 30;
		end++;
		break;
	default:
		return kerr_set(err, "bad size '%s': unknown suffix '%s' (use K, M or G)", s, end);
	}
	/* Accept "512M", "512MiB" and "512MB" alike. */
	if (shift && (!strcasecmp(end, "iB") || !strcasecmp(end, "B")))
		end += strlen(end);
	if (*end)
		return kerr_set(err, "bad size '%s': trailing characters '%s'", s, end);
	if (shift && v > (ULLONG_MAX >> shift))
		return kerr_set(err, "bad size '%s': number too large", s);
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_cpus(const char *s, unsigned int *out, struct kerr *err)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!isdigit((unsigned char)s[0]) || *end || errno || v < 1 || v > KESTREL_MAX_CPUS)
		return kerr_set(err, "bad --cpus '%s': expected a number from 1 to %d", s,
				KESTREL_MAX_CPUS);
	*out = (unsigned int)v;
	return 0;
}

enum {
	OPT_KERNEL = 256,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_MEMORY,
	OPT_CPUS,
	OPT_VERSION,
	OPT_DISK,
	OPT_CONSOLE,
	OPT_SERIAL_PORT,
	OPT_NET,
	OPT_SECCOMP,
	OPT_TRANSPORT,
	OPT_MMIO_CMDLINE,
	OPT_DUMP_DTB,
	OPT_ITS,
	OPT_ACPI,
	OPT_SHUTDOWN_TIMEOUT,
	OPT_KERNEL_UNPACK,
	OPT_KERNEL_CACHE,
};

/*
 * "auto", "on" or "off" as 0, 1, 2 (-1 otherwise): each such option's enum lists AUTO, ON, OFF
 * in that order.
 */
_Static_assert(NET_CHOICE_AUTO == 0 && NET_CHOICE_ON == 1 && NET_CHOICE_OFF == 2, "order");
_Static_assert(ACPI_AUTO == 0 && ACPI_ON == 1 && ACPI_OFF == 2, "order");
_Static_assert(ARCH_ITS_AUTO == 0 && ARCH_ITS_ON == 1 && ARCH_ITS_OFF == 2, "order");
static int parse_choice(const char *v)
{
	static const char *const names[] = {"auto", "on", "off"};

	for (int i = 0; i < 3; i++)
		if (!strcmp(v, names[i]))
			return i;
	return -1;
}

/* "on"/"off" (also yes/no, true/false, 1/0) for boolean sub-options. */
static int parse_bool(const char *opt, const char *key, const char *v, bool *out, struct kerr *err)
{
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
		*out = false;
	else
		return kerr_set(err, "%s: %s=%s: expected on or off", opt, key, v);
	return 0;
}

/*
 * Splits "k1=v1,k2=v2" and calls fn for each pair. Values cannot contain commas (as in
 * Cloud Hypervisor's syntax); an empty value or a missing '=' is an error.
 */
typedef int (*kv_fn)(void *ctx, const char *opt, const char *key, const char *val,
		     struct kerr *err);

static int parse_kv(const char *opt, const char *arg, kv_fn fn, void *ctx, struct kerr *err)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int rc = 0;

	if (!copy)
		return kerr_set(err, "out of memory");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq || eq == tok || !eq[1]) {
			rc = kerr_set(err, "%s: '%s' is not key=value (see kestrel --help)", opt,
				      tok);
			break;
		}
		*eq = '\0';
		rc = fn(ctx, opt, tok, eq + 1, err);
		if (rc)
			break;
	}
	free(copy);
	return rc;
}

static int set_string(char **dst, const char *opt, const char *key, const char *val,
		      struct kerr *err)
{
	if (*dst)
		return kerr_set(err, "%s: %s given twice", opt, key);
	*dst = strdup(val);
	if (!*dst)
		return kerr_set(err, "out of memory");
	return 0;
}

static int parse_transport(const char *opt, const char *val, enum transport_kind *out,
			   struct kerr *err)
{
	if (!strcmp(val, "pci"))
		*out = TRANSPORT_PCI;
	else if (!strcmp(val, "mmio"))
		*out = TRANSPORT_MMIO;
	else
		return kerr_set(err, "%s: transport=%s: expected pci or mmio", opt, val);
	return 0;
}

static int disk_kv(void *ctx, const char *opt, const char *key, const char *val, struct kerr *err)
{
	struct disk_config *d = ctx;
	char *end;
	long n;

	if (!strcmp(key, "path"))
		return set_string(&d->path, opt, key, val, err);
	if (!strcmp(key, "readonly"))
		return parse_bool(opt, key, val, &d->readonly, err);
	if (!strcmp(key, "direct"))
		return parse_bool(opt, key, val, &d->direct, err);
	if (!strcmp(key, "num_queues")) {
		errno = 0;
		n = strtol(val, &end, 10);
		if (*end || errno || n < 1 || n > KESTREL_MAX_DISK_QUEUES)
			return kerr_set(err, "%s: num_queues=%s: expected 1 to %d", opt, val,
					KESTREL_MAX_DISK_QUEUES);
		d->num_queues = (unsigned int)n;
		return 0;
	}
	if (!strcmp(key, "transport"))
		return parse_transport(opt, val, &d->transport, err);
	return kerr_set(err, "%s: unknown key '%s' (path, readonly, direct, num_queues, transport)",
			opt, key);
}

static int port_kv(void *ctx, const char *opt, const char *key, const char *val, struct kerr *err)
{
	struct serial_port_config *p = ctx;

	if (!strcmp(key, "name"))
		return set_string(&p->name, opt, key, val, err);
	if (!strcmp(key, "socket"))
		return set_string(&p->socket, opt, key, val, err);
	return kerr_set(err, "%s: unknown key '%s' (name, socket)", opt, key);
}

static int parse_uint(const char *opt, const char *key, const char *val, unsigned long min,
		      unsigned long max, unsigned int *out, struct kerr *err)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(val, &end, 10);
	if (!isdigit((unsigned char)val[0]) || *end || errno || n < min || n > max)
		return kerr_set(err, "%s: %s=%s: expected a number from %lu to %lu", opt, key, val,
				min, max);
	*out = (unsigned int)n;
	return 0;
}

static int parse_mac(const char *opt, const char *val, uint8_t mac[6], struct kerr *err)
{
	unsigned int b[6];
	char tail;

	if (sscanf(val, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6 ||
	    strlen(val) != 17)
		return kerr_set(err, "%s: mac=%s: expected six hex bytes like 52:54:00:12:34:56",
				opt, val);
	if (b[0] & 1)
		return kerr_set(err, "%s: mac=%s is a multicast address", opt, val);
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

static int net_kv(void *ctx, const char *opt, const char *key, const char *val, struct kerr *err)
{
	struct net_config *n = ctx;
	unsigned int fd;

	if (!strcmp(key, "tap"))
		return set_string(&n->tap, opt, key, val, err);
	if (!strcmp(key, "fd")) {
		if (parse_uint(opt, key, val, 0, 1 << 20, &fd, err))
			return -1;
		n->fd = (int)fd;
		return 0;
	}
	if (!strcmp(key, "mac")) {
		n->mac_set = true;
		return parse_mac(opt, val, n->mac, err);
	}
	if (!strcmp(key, "mtu"))
		return parse_uint(opt, key, val, 68, 65535, &n->mtu, err);
	if (!strcmp(key, "queues"))
		return parse_uint(opt, key, val, 1, KESTREL_MAX_NET_QUEUES, &n->queues, err);
	if (!strcmp(key, "vhost")) {
		int c = parse_choice(val);

		if (c < 0)
			return kerr_set(err, "%s: vhost=%s: expected auto, on or off", opt, val);
		n->vhost = (enum net_vhost_choice)c;
		return 0;
	}
	if (!strcmp(key, "transport"))
		return parse_transport(opt, val, &n->transport, err);
	return kerr_set(err, "%s: unknown key '%s' (tap, fd, mac, mtu, queues, vhost, transport)",
			opt, key);
}

static int add_nic(struct vm_config *cfg, const char *arg, struct kerr *err)
{
	struct net_config *n;

	if (cfg->nr_nics == KESTREL_MAX_NICS)
		return kerr_set(err, "too many --net options (at most %d)", KESTREL_MAX_NICS);
	n = &cfg->nics[cfg->nr_nics++];
	n->fd = -1;
	n->queues = 1;
	if (parse_kv("--net", arg, net_kv, n, err))
		return -1;
	if (!n->tap == (n->fd < 0))
		return kerr_set(err, "--net %s: give exactly one of tap=NAME or fd=N", arg);
	if (n->fd >= 0 && n->queues > 1)
		return kerr_set(err, "--net %s: queues=N needs tap=NAME (one fd is one queue)",
				arg);
	return 0;
}

static int add_disk(struct vm_config *cfg, const char *arg, struct kerr *err)
{
	struct disk_config *d;

	if (cfg->nr_disks == KESTREL_MAX_DISKS)
		return kerr_set(err, "too many --disk options (at most %d)", KESTREL_MAX_DISKS);
	d = &cfg->disks[cfg->nr_disks++];
	d->num_queues = 1;
	if (parse_kv("--disk", arg, disk_kv, d, err))
		return -1;
	if (!d->path)
		return kerr_set(err, "--disk %s: no path= given", arg);
	return 0;
}

static int add_port(struct vm_config *cfg, const char *arg, struct kerr *err)
{
	struct serial_port_config *p;

	if (cfg->nr_ports == KESTREL_MAX_PORTS)
		return kerr_set(err, "too many --serial-port options (at most %d)",
				KESTREL_MAX_PORTS);
	p = &cfg->ports[cfg->nr_ports++];
	if (parse_kv("--serial-port", arg, port_kv, p, err))
		return -1;
	if (!p->name || !p->socket)
		return kerr_set(err, "--serial-port %s: needs both name= and socket=", arg);
	for (unsigned int i = 0; i + 1 < cfg->nr_ports; i++)
		if (!strcmp(cfg->ports[i].name, p->name))
			return kerr_set(err, "--serial-port: name '%s' used twice", p->name);
	return 0;
}

void config_free(struct vm_config *cfg)
{
	for (unsigned int i = 0; i < cfg->nr_disks; i++)
		free(cfg->disks[i].path);
	for (unsigned int i = 0; i < cfg->nr_ports; i++) {
		free(cfg->ports[i].name);
		free(cfg->ports[i].socket);
	}
	for (unsigned int i = 0; i < cfg->nr_nics; i++)
		free(cfg->nics[i].tap);
	cfg->nr_disks = cfg->nr_ports = cfg->nr_nics = 0;
}

/* Devices that named no transport take --transport's, and that defaults to PCI. */
static void resolve_transports(struct vm_config *cfg)
{
	enum transport_kind def = cfg->transport ? cfg->transport : TRANSPORT_PCI;

	cfg->transport = def;
	for (unsigned int i = 0; i < cfg->nr_disks; i++)
		if (!cfg->disks[i].transport)
			cfg->disks[i].transport = def;
	for (unsigned int i = 0; i < cfg->nr_nics; i++)
		if (!cfg->nics[i].transport)
			cfg->nics[i].transport = def;
	if (!cfg->console_transport)
		cfg->console_transport = def;
}

int config_parse(int argc, char *const argv[], struct vm_config *cfg, struct kerr *err)
{
	static const struct option opts[] = {
	    {"kernel", required_argument, NULL, OPT_KERNEL},
	    {"initrd", required_argument, NULL, OPT_INITRD},
	    {"cmdline", required_argument, NULL, OPT_CMDLINE},
	    {"memory", required_argument, NULL, OPT_MEMORY},
	    {"cpus", required_argument, NULL, OPT_CPUS},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {"disk", required_argument, NULL, OPT_DISK},
	    {"console", required_argument, NULL, OPT_CONSOLE},
	    {"serial-port", required_argument, NULL, OPT_SERIAL_PORT},
	    {"net", required_argument, NULL, OPT_NET},
	    {"seccomp", required_argument, NULL, OPT_SECCOMP},
	    {"transport", required_argument, NULL, OPT_TRANSPORT},
	    {"mmio-cmdline", no_argument, NULL, OPT_MMIO_CMDLINE},
	    {"dump-dtb", required_argument, NULL, OPT_DUMP_DTB},
	    {"its", required_argument, NULL, OPT_ITS},
	    {"acpi", required_argument, NULL, OPT_ACPI},
	    {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT},
	    {"kernel-unpack", required_argument, NULL, OPT_KERNEL_UNPACK},
	    {"kernel-cache", required_argument, NULL, OPT_KERNEL_CACHE},
	    {NULL, 0, NULL, 0},
	};
	bool cmdline_given = false;
	int c, choice; /* choice: an auto|on|off option's parse_choice() */

	memset(cfg, 0, sizeof(*cfg));
	cfg->cmdline = KESTREL_DEFAULT_CMDLINE;
	cfg->memory = KESTREL_DEFAULT_MEMORY;
	cfg->cpus = 1;
	cfg->seccomp = true;
	cfg->kernel_cache = true;
	cfg->shutdown_timeout = KESTREL_DEFAULT_SHUTDOWN_TIMEOUT;
	cfg->acpi = ACPI_ON; /* poweroff and SIGTERM need it; acpi=off guests keep the MP table */

	/* getopt keeps global state: reset it so config_parse can be called more than once. */
	optind = 0;
	opterr = 0;
	/* '+': stop at the first non-option instead of permuting argv (which is const). */
	while ((c = getopt_long(argc, argv, "+:vh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KERNEL:
			cfg->kernel_path = optarg;
			break;
		case OPT_INITRD:
			cfg->initrd_path = optarg;
			break;
		case OPT_CMDLINE:
			cfg->cmdline = optarg;
			cmdline_given = true;
			break;
		case OPT_MEMORY:
			if (config_parse_size(optarg, &cfg->memory, err))
				return -1;
			if (cfg->memory < KESTREL_MIN_MEMORY)
				return kerr_set(err,
						"--memory %s is too small: the guest needs at "
						"least %lluM",
						optarg, KESTREL_MIN_MEMORY >> 20);
			if (cfg->memory > KESTREL_MAX_MEMORY)
				return kerr_set(err, "--memory %s is too large: at most %lluG",
						optarg, KESTREL_MAX_MEMORY >> 30);
			if (cfg->memory & 0xfffff)
				return kerr_set(err, "--memory %s is not a whole number of MiB",
						optarg);
			break;
		case OPT_CPUS:
			if (parse_cpus(optarg, &cfg->cpus, err))
				return -1;
			break;
		case OPT_DISK:
			if (add_disk(cfg, optarg, err))
				return -1;
			break;
		case OPT_CONSOLE:
			if (!strcmp(optarg, "serial"))
				cfg->console = CONSOLE_SERIAL;
			else if (!strcmp(optarg, "virtio"))
				cfg->console = CONSOLE_VIRTIO;
			else if (!strcmp(optarg, "virtio,transport=pci"))
				cfg->console = CONSOLE_VIRTIO,
				cfg->console_transport = TRANSPORT_PCI;
			else if (!strcmp(optarg, "virtio,transport=mmio"))
				cfg->console = CONSOLE_VIRTIO,
				cfg->console_transport = TRANSPORT_MMIO;
			else
				return kerr_set(err,
						"bad --console '%s': expected serial, virtio or "
						"virtio,transport=pci|mmio",
						optarg);
			break;
		case OPT_ACPI:
			choice = parse_choice(optarg);
			if (choice < 0)
				return kerr_set(err, "bad --acpi '%s': expected auto, on or off",
						optarg);
			cfg->acpi = (enum acpi_choice)choice;
			break;
		case OPT_SHUTDOWN_TIMEOUT:
			if (parse_uint("--shutdown-timeout", "seconds", optarg, 0, 3600,
				       &cfg->shutdown_timeout, err))
				return -1;
			break;
		case OPT_MMIO_CMDLINE:
			cfg->mmio_cmdline = true;
			break;
		case OPT_DUMP_DTB:
			cfg->dump_dtb = optarg;
			break;
		case OPT_KERNEL_UNPACK:
			if (!strcmp(optarg, "host"))
				cfg->kernel_unpack = KERNEL_UNPACK_HOST;
			else if (!strcmp(optarg, "guest") && arch_layout.kernel_self_unpack)
				cfg->kernel_unpack = KERNEL_UNPACK_GUEST;
			else if (!strcmp(optarg, "guest"))
				return kerr_set(err, "--kernel-unpack guest: this architecture's "
						     "kernels cannot decompress themselves");
			else
				return kerr_set(err,
						"bad --kernel-unpack '%s': expected host or guest",
						optarg);
			break;
		case OPT_KERNEL_CACHE:
			choice = parse_choice(optarg);
			if (choice != 1 && choice != 2)
				return kerr_set(err, "bad --kernel-cache '%s': expected on or off",
						optarg);
			cfg->kernel_cache = choice == 1;
			break;
		case OPT_ITS:
			if (!arch_layout.msi_devid) /* no ITS to have */
				return kerr_set(err, "--its: only arm64 guests have a GIC ITS");
			choice = parse_choice(optarg);
			if (choice < 0)
				return kerr_set(err, "bad --its '%s': expected auto, on or off",
						optarg);
			cfg->its = (enum arch_its_choice)choice;
			break;
		case OPT_TRANSPORT:
			if (parse_transport("--transport", optarg, &cfg->transport, err))
				return -1;
			break;
		case OPT_SERIAL_PORT:
			if (add_port(cfg, optarg, err))
				return -1;
			break;
		case OPT_NET:
			if (add_nic(cfg, optarg, err))
				return -1;
			break;
		case OPT_SECCOMP:
			if (!strcmp(optarg, "on"))
				cfg->seccomp = true;
			else if (!strcmp(optarg, "off"))
				cfg->seccomp = false;
			else
				return kerr_set(err, "bad --seccomp '%s': expected on or off",
						optarg);
			break;
		case 'v':
			cfg->verbose = true;
			break;
		case 'h':
			cfg->help = true;
			return 0;
		case OPT_VERSION:
			cfg->version = true;
			return 0;
		case ':':
			return kerr_set(err, "option '%s' needs a value (see kestrel --help)",
					argv[optind - 1]);
		default:
			/*
			 * An unknown short option inside a group ("-xv") leaves optind on the
			 * group, so argv[optind - 1] is the previous word: name it by optopt.
			 * Long options set optopt to 0 (unknown) or to their own value (given
			 * a value they do not take); those are named by their word.
			 */
			if (optopt > 0 && optopt < OPT_KERNEL && !strchr("vh", optopt))
				return kerr_set(err, "unknown option '-%c' (see kestrel --help)",
						optopt);
			return kerr_set(err, "unknown option '%s' (see kestrel --help)",
					argv[optind - 1]);
		}
	}
	if (optind < argc)
		return kerr_set(err, "unexpected argument '%s' (see kestrel --help)", argv[optind]);
	resolve_transports(cfg);
	/* Without --cmdline, the kernel's console follows --console. */
	if (!cmdline_given && cfg->console == CONSOLE_VIRTIO)
		cfg->cmdline = KESTREL_DEFAULT_CMDLINE_VIRTIO;
	if (!cfg->kernel_path)
		return kerr_set(err, "no kernel given: use --kernel PATH (see kestrel --help)");
	return 0;
}
