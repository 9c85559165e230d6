#include "vmm/config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

const char *config_usage(void)
{
	return "usage: kestrel --kernel PATH [options]\n"
	       "  --kernel PATH     Linux kernel: bzImage or ELF vmlinux (required)\n"
	       "  --initrd PATH     initial ramdisk\n"
	       "  --cmdline STR     kernel command line (default: \"" KESTREL_DEFAULT_CMDLINE
	       "\")\n"
	       "  --memory SIZE     guest RAM, with K/M/G suffix (default: 256M)\n"
	       "  --cpus N          number of vCPUs (default: 1)\n"
	       "  -v, --verbose     log start-up timing and exits to stderr\n"
	       "  -h, --help        this text\n"
	       "  --version         print the version\n"
	       "See docs/cli.md for exit statuses and the debug-exit port.\n";
}

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

enum { OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_MEMORY, OPT_CPUS, OPT_VERSION };

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
	    {NULL, 0, NULL, 0},
	};
	int c;

	memset(cfg, 0, sizeof(*cfg));
	cfg->cmdline = KESTREL_DEFAULT_CMDLINE;
	cfg->memory = KESTREL_DEFAULT_MEMORY;
	cfg->cpus = 1;

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
	if (!cfg->kernel_path)
		return kerr_set(err, "no kernel given: use --kernel PATH (see kestrel --help)");
	return 0;
}
