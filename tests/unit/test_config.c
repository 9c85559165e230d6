/* Command-line parsing: defaults, every option, sizes, and one-line errors for user mistakes. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "vmm/config.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

/* argv arrays are NULL-terminated like a real one; ARGC leaves the NULL out. */
#define PARSE(cfg, err, ...)                                                                       \
	({                                                                                         \
		char *argv_[] = {"kestrel", __VA_ARGS__, NULL};                                    \
		config_parse(ARGC(argv_), argv_, (cfg), (err));                                    \
	})

static void assert_one_line(const struct kerr *err)
{
	cr_assert_neq(err->msg[0], '\0', "error message is empty");
	cr_assert_null(strchr(err->msg, '\n'), "error message has a newline: '%s'", err->msg);
}

/* The parse fails with -1 and a one-line message containing want. */
#define EXPECT_FAIL(want, ...)                                                                     \
	do {                                                                                       \
		struct vm_config cfg_;                                                             \
		struct kerr err_ = {{0}};                                                          \
		int rc_ = PARSE(&cfg_, &err_, __VA_ARGS__);                                        \
		cr_assert_eq(rc_, -1, "parse of " #__VA_ARGS__ " returned %d", rc_);               \
		assert_one_line(&err_);                                                            \
		cr_assert_not_null(strstr(err_.msg, want), "message '%s' does not mention '%s'",   \
				   err_.msg, want);                                                \
	} while (0)

Test(config, defaults)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "bzImage"), 0, "%s", err.msg);
	cr_assert_str_eq(cfg.kernel_path, "bzImage");
	cr_assert_null(cfg.initrd_path);
	cr_assert_str_eq(cfg.cmdline, KESTREL_DEFAULT_CMDLINE);
	cr_assert_str_eq(cfg.cmdline, "console=ttyS0 reboot=k panic=1");
	cr_assert_eq(cfg.memory, 256 * MiB);
	cr_assert_eq(cfg.cpus, 1);
	cr_assert(cfg.seccomp, "seccomp must be on by default");
	cr_assert_eq(cfg.acpi, ACPI_ON, "ACPI must be on by default (poweroff, SIGTERM)");
	cr_assert_eq(cfg.shutdown_timeout, 30);
	cr_assert(!cfg.verbose);
	cr_assert(!cfg.help);
	cr_assert(!cfg.version);
}

Test(config, every_option)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "vmlinux", "--initrd", "initrd.img", "--cmdline",
			   "console=hvc0 quiet", "--memory", "2G", "--cpus", "4", "--verbose"),
		     0, "%s", err.msg);
	cr_assert_str_eq(cfg.kernel_path, "vmlinux");
	cr_assert_str_eq(cfg.initrd_path, "initrd.img");
	cr_assert_str_eq(cfg.cmdline, "console=hvc0 quiet");
	cr_assert_eq(cfg.memory, 2 * GiB);
	cr_assert_eq(cfg.cpus, 4);
	cr_assert(cfg.verbose);
	cr_assert(!cfg.help);
	cr_assert(!cfg.version);
}

Test(config, equals_form_and_short_verbose)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(
	    PARSE(&cfg, &err, "-v", "--kernel=k", "--memory=512M", "--cpus=254", "--cmdline="), 0,
	    "%s", err.msg);
	cr_assert_str_eq(cfg.kernel_path, "k");
	cr_assert_eq(cfg.memory, 512 * MiB);
	cr_assert_eq(cfg.cpus, 254);
	cr_assert_str_eq(cfg.cmdline, "");
	cr_assert(cfg.verbose);
}

Test(config, last_option_wins)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(
	    PARSE(&cfg, &err, "--kernel", "a", "--kernel", "b", "--cpus", "2", "--cpus", "3"), 0,
	    "%s", err.msg);
	cr_assert_str_eq(cfg.kernel_path, "b");
	cr_assert_eq(cfg.cpus, 3);
}

Test(config, memory_limits)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--memory", "32M"), 0, "%s", err.msg);
	cr_assert_eq(cfg.memory, 32 * MiB);
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--memory", "1024G"), 0, "%s", err.msg);
	cr_assert_eq(cfg.memory, 1024 * GiB);
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--memory", "33554432"), 0, "%s", err.msg);
	cr_assert_eq(cfg.memory, 32 * MiB);
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--memory", "1536MiB"), 0, "%s", err.msg);
	cr_assert_eq(cfg.memory, 1536 * MiB);
	EXPECT_FAIL("too small", "--kernel", "k", "--memory", "16M");
	EXPECT_FAIL("16M", "--kernel", "k", "--memory", "16M");
	EXPECT_FAIL("too small", "--kernel", "k", "--memory", "33554431");
	EXPECT_FAIL("too large", "--kernel", "k", "--memory", "1025G");
	/* 1536K is 1.5 MiB: both too small and not a whole MiB; either way it is refused. */
	EXPECT_FAIL("1536K", "--kernel", "k", "--memory", "1536K");
	EXPECT_FAIL("whole number of MiB", "--kernel", "k", "--memory", "33793K");
	EXPECT_FAIL("whole number of MiB", "--kernel", "k", "--memory", "33554433");
}

Test(config, bad_memory_values)
{
	EXPECT_FAIL("bad size", "--kernel", "k", "--memory", "");
	EXPECT_FAIL("12Q", "--kernel", "k", "--memory", "12Q");
	EXPECT_FAIL("abc", "--kernel", "k", "--memory", "abc");
	EXPECT_FAIL("-5", "--kernel", "k", "--memory", "-5");
	EXPECT_FAIL("too large", "--kernel", "k", "--memory", "99999999999999999999G");
}

static void size_ok(const char *s, uint64_t want)
{
	struct kerr err = {{0}};
	uint64_t v = 0xdeadbeef;

	cr_assert_eq(config_parse_size(s, &v, &err), 0, "'%s': %s", s, err.msg);
	cr_assert_eq(v, want, "'%s' parsed as %llu, want %llu", s, (unsigned long long)v,
		     (unsigned long long)want);
}

static void size_bad(const char *s, const char *want)
{
	struct kerr err = {{0}};
	uint64_t v = 0x1234;

	cr_assert_eq(config_parse_size(s, &v, &err), -1, "'%s' was accepted", s);
	cr_assert_eq(v, 0x1234, "'%s': output written on failure", s);
	assert_one_line(&err);
	cr_assert_not_null(strstr(err.msg, want), "'%s': message '%s' does not mention '%s'", s,
			   err.msg, want);
}

Test(config, size_suffixes)
{
	size_ok("0", 0);
	size_ok("1", 1);
	size_ok("1048576", MiB);
	size_ok("64K", 64 << 10);
	size_ok("64k", 64 << 10);
	size_ok("1KiB", 1 << 10);
	size_ok("512M", 512 * MiB);
	size_ok("512m", 512 * MiB);
	size_ok("512MiB", 512 * MiB);
	size_ok("512MB", 512 * MiB);
	size_ok("512mib", 512 * MiB);
	size_ok("2G", 2 * GiB);
	size_ok("2GiB", 2 * GiB);
	size_ok("2gb", 2 * GiB);
	size_ok("16777215G", 16777215ULL * GiB);
	size_ok("18446744073709551615", UINT64_MAX);
}

Test(config, bad_sizes)
{
	size_bad("", "bad size");
	size_bad("12Q", "12Q");
	size_bad("abc", "abc");
	size_bad("-5", "-5");
	size_bad("+5", "+5");
	size_bad(" 5", "bad size");
	size_bad("M", "bad size");
	size_bad("99999999999999999999G", "too large");
	size_bad("99999999999999999999", "too large");
	size_bad("17179869184G", "too large"); /* 2^64 bytes */
	size_bad("18014398509481984K", "too large");
	size_bad("5MiBx", "trailing");
	size_bad("5iB", "5iB");
	size_bad("5 M", "5 M");
	size_bad("1.5G", "1.5G");
	size_bad(NULL, "bad size");
}

Test(config, bad_cpus)
{
	EXPECT_FAIL("--cpus '0'", "--kernel", "k", "--cpus", "0");
	EXPECT_FAIL("--cpus '-1'", "--kernel", "k", "--cpus", "-1");
	EXPECT_FAIL("--cpus 'abc'", "--kernel", "k", "--cpus", "abc");
	EXPECT_FAIL("--cpus '255'", "--kernel", "k", "--cpus", "255");
	EXPECT_FAIL("254", "--kernel", "k", "--cpus", "255");
	EXPECT_FAIL("--cpus ''", "--kernel", "k", "--cpus", "");
	EXPECT_FAIL("--cpus '2x'", "--kernel", "k", "--cpus", "2x");
	EXPECT_FAIL("--cpus ' 2'", "--kernel", "k", "--cpus", " 2");
	EXPECT_FAIL("--cpus", "--kernel", "k", "--cpus", "99999999999999999999999");
}

Test(config, cpus_range)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--cpus", "1"), 0, "%s", err.msg);
	cr_assert_eq(cfg.cpus, 1);
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--cpus", "254"), 0, "%s", err.msg);
	cr_assert_eq(cfg.cpus, KESTREL_MAX_CPUS);
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--cpus", "64"), 0, "%s", err.msg);
	cr_assert_eq(cfg.cpus, 64);
}

Test(config, unknown_option)
{
	EXPECT_FAIL("unknown option '--bogus'", "--kernel", "k", "--bogus");
	EXPECT_FAIL("unknown option '--bogus=1'", "--bogus=1", "--kernel", "k");
	EXPECT_FAIL("unknown option", "--kernel", "k", "-x");
	EXPECT_FAIL("-x", "--kernel", "k", "-x");
	/* An unknown short option at the start of a group must still be named. */
	EXPECT_FAIL("unknown option '-x'", "--kernel", "k", "-xv");
	EXPECT_FAIL("unknown option '--version=1'", "--version=1");
	EXPECT_FAIL("-x", "--kernel", "k", "-vx");
	EXPECT_FAIL("unknown option '--verbose=yes'", "--verbose=yes", "--kernel", "k");
}

Test(config, missing_value)
{
	EXPECT_FAIL("'--kernel' needs a value", "--kernel");
	EXPECT_FAIL("'--memory' needs a value", "--kernel", "k", "--memory");
	EXPECT_FAIL("'--cpus' needs a value", "--kernel", "k", "--cpus");
	EXPECT_FAIL("'--initrd' needs a value", "--kernel", "k", "--initrd");
	EXPECT_FAIL("'--cmdline' needs a value", "--kernel", "k", "--cmdline");
}

Test(config, seccomp)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--seccomp=off"), 0, "%s", err.msg);
	cr_assert(!cfg.seccomp);
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--seccomp=off", "--seccomp", "on"), 0,
		     "%s", err.msg);
	cr_assert(cfg.seccomp, "the last --seccomp wins");
	EXPECT_FAIL("bad --seccomp 'maybe': expected on or off", "--kernel", "k",
		    "--seccomp=maybe");
	EXPECT_FAIL("bad --seccomp '': expected on or off", "--kernel", "k", "--seccomp=");
	EXPECT_FAIL("'--seccomp' needs a value", "--kernel", "k", "--seccomp");
}

Test(config, stray_argument)
{
	EXPECT_FAIL("unexpected argument 'stray'", "--kernel", "k", "stray");
	EXPECT_FAIL("unexpected argument 'stray'", "stray", "--kernel", "k");
	EXPECT_FAIL("unexpected argument 'bzImage'", "bzImage");
}

Test(config, argv_not_modified)
{
	char *argv[] = {"kestrel", "stray", "--kernel", "k", "more", "--cpus", "2", NULL};
	char *copy[8];
	struct vm_config cfg;
	struct kerr err = {{0}};

	memcpy(copy, argv, sizeof(argv));
	cr_assert_eq(config_parse(ARGC(argv), argv, &cfg, &err), -1);
	assert_one_line(&err);
	cr_assert_not_null(strstr(err.msg, "stray"), "%s", err.msg);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(argv[i], copy[i], "argv[%d] was changed: '%s'", i,
			     argv[i] ? argv[i] : "(null)");
}

Test(config, missing_kernel)
{
	EXPECT_FAIL("no kernel given", "--memory", "512M");
	EXPECT_FAIL("--kernel PATH", "-v");

	struct vm_config cfg;
	struct kerr err = {{0}};
	char *argv[] = {"kestrel", NULL};

	cr_assert_eq(config_parse(1, argv, &cfg, &err), -1);
	assert_one_line(&err);
	cr_assert_not_null(strstr(err.msg, "no kernel given"), "%s", err.msg);
}

Test(config, help_and_version)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--help"), 0, "%s", err.msg);
	cr_assert(cfg.help);
	cr_assert(!cfg.version);
	cr_assert_eq(PARSE(&cfg, &err, "-h"), 0, "%s", err.msg);
	cr_assert(cfg.help);
	/* --help wins over what follows it, even a mistake. */
	cr_assert_eq(PARSE(&cfg, &err, "--help", "--cpus", "0"), 0, "%s", err.msg);
	cr_assert(cfg.help);
	cr_assert_eq(PARSE(&cfg, &err, "--version"), 0, "%s", err.msg);
	cr_assert(cfg.version);
	cr_assert(!cfg.help);
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--version"), 0, "%s", err.msg);
	cr_assert(cfg.version);

	const char *usage = config_usage();
	cr_assert_not_null(strstr(usage, "--kernel"));
	cr_assert_not_null(strstr(usage, "--memory"));
	cr_assert_not_null(strstr(usage, "--cpus"));
	cr_assert_not_null(strstr(usage, "--initrd"));
	cr_assert_not_null(strstr(usage, "--cmdline"));
}

Test(config, repeated_calls_reset_state)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "a", "--cpus", "8", "-v", "--initrd", "i"), 0,
		     "%s", err.msg);
	cr_assert_eq(cfg.cpus, 8);
	/* Nothing from the previous parse leaks into the next. */
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "b"), 0, "%s", err.msg);
	cr_assert_str_eq(cfg.kernel_path, "b");
	cr_assert_eq(cfg.cpus, 1);
	cr_assert(!cfg.verbose);
	cr_assert_null(cfg.initrd_path);

	/* A failure in the middle of a short-option group leaves getopt mid-word. */
	EXPECT_FAIL("-x", "-xv", "--kernel", "k");
	cr_assert_eq(PARSE(&cfg, &err, "-v", "--kernel", "c"), 0, "%s", err.msg);
	cr_assert(cfg.verbose);
	cr_assert_str_eq(cfg.kernel_path, "c");

	EXPECT_FAIL("needs a value", "--kernel", "k", "--cpus");
	cr_assert_eq(PARSE(&cfg, &err, "--cpus", "2", "--kernel", "d"), 0, "%s", err.msg);
	cr_assert_eq(cfg.cpus, 2);
	cr_assert_str_eq(cfg.kernel_path, "d");

	for (int i = 0; i < 100; i++) {
		cr_assert_eq(PARSE(&cfg, &err, "--kernel", "e", "--memory", "1G"), 0, "%s",
			     err.msg);
		cr_assert_eq(cfg.memory, GiB);
		EXPECT_FAIL("stray", "--kernel", "e", "stray");
	}
}

Test(config, transports)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--disk", "path=a", "--net", "tap=t0"), 0,
		     "%s", err.msg);
	cr_assert_eq(cfg.transport, TRANSPORT_PCI, "PCI unless asked otherwise");
	cr_assert_eq(cfg.disks[0].transport, TRANSPORT_PCI);
	cr_assert_eq(cfg.nics[0].transport, TRANSPORT_PCI);
	cr_assert_eq(cfg.console_transport, TRANSPORT_PCI);
	cr_assert(!cfg.mmio_cmdline);
	config_free(&cfg);

	/* A mix: the default for some, an explicit choice for others. */
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--transport", "mmio", "--disk", "path=a",
			   "--disk", "path=b,transport=pci", "--net", "tap=t0,transport=pci",
			   "--console", "virtio", "--mmio-cmdline"),
		     0, "%s", err.msg);
	cr_assert_eq(cfg.disks[0].transport, TRANSPORT_MMIO);
	cr_assert_eq(cfg.disks[1].transport, TRANSPORT_PCI);
	cr_assert_eq(cfg.nics[0].transport, TRANSPORT_PCI);
	cr_assert_eq(cfg.console_transport, TRANSPORT_MMIO);
	cr_assert(cfg.mmio_cmdline);
	config_free(&cfg);

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--console", "virtio,transport=mmio"), 0,
		     "%s", err.msg);
	cr_assert_eq(cfg.console_transport, TRANSPORT_MMIO);
	config_free(&cfg);

	EXPECT_FAIL("--transport: transport=isa: expected pci or mmio", "--kernel", "k",
		    "--transport", "isa");
	EXPECT_FAIL("transport=usb: expected pci or mmio", "--kernel", "k", "--disk",
		    "path=a,transport=usb");
	EXPECT_FAIL("bad --console 'virtio,transport=x'", "--kernel", "k", "--console",
		    "virtio,transport=x");
}

Test(config, acpi_choices)
{
	struct vm_config cfg;
	struct kerr err = {{0}};
	static struct {
		char *arg;
		enum acpi_choice want;
	} cases[] = {{"on", ACPI_ON}, {"off", ACPI_OFF}, {"auto", ACPI_AUTO}};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--acpi", cases[i].arg), 0, "%s",
			     err.msg);
		cr_assert_eq(cfg.acpi, cases[i].want, "--acpi %s", cases[i].arg);
		config_free(&cfg);
	}
	EXPECT_FAIL("bad --acpi 'yes': expected auto, on or off", "--kernel", "k", "--acpi", "yes");
}

Test(config, net_vhost_choices)
{
	struct vm_config cfg;
	struct kerr err = {{0}};
	struct {
		char *arg;
		enum net_vhost_choice want;
	} cases[] = {{"tap=t0,vhost=on", NET_CHOICE_ON},
		     {"tap=t0,vhost=off", NET_CHOICE_OFF},
		     {"tap=t0,vhost=auto", NET_CHOICE_AUTO},
		     {"tap=t0", NET_CHOICE_AUTO}};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--net", cases[i].arg), 0, "%s",
			     err.msg);
		cr_assert_eq(cfg.nics[0].vhost, cases[i].want, "--net %s", cases[i].arg);
		config_free(&cfg);
	}
	EXPECT_FAIL("--net: vhost=1: expected auto, on or off", "--kernel", "k", "--net",
		    "tap=t0,vhost=1");
}

Test(config, dump_dtb)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k"), 0, "%s", err.msg);
	cr_assert_null(cfg.dump_dtb);
	config_free(&cfg);
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--dump-dtb", "/tmp/x.dtb"), 0, "%s",
		     err.msg);
	cr_assert_str_eq(cfg.dump_dtb, "/tmp/x.dtb");
	config_free(&cfg);
	EXPECT_FAIL("--dump-dtb", "--kernel", "k", "--dump-dtb");
}

/* --its exists where the interrupt controller can have one (arm64); x86 refuses it. */
Test(config, its_choice)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k"), 0, "%s", err.msg);
	cr_assert_eq(cfg.its, ARCH_ITS_AUTO);
	config_free(&cfg);
	if (!arch_layout.msi_devid) {
		EXPECT_FAIL("--its: only arm64 guests have a GIC ITS", "--kernel", "k", "--its",
			    "off");
		return;
	}
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--its", "off"), 0, "%s", err.msg);
	cr_assert_eq(cfg.its, ARCH_ITS_OFF);
	config_free(&cfg);
	EXPECT_FAIL("bad --its 'maybe': expected auto, on or off", "--kernel", "k", "--its",
		    "maybe");
}

/* --kernel-unpack: host by default; guest where kernels can decompress themselves (x86). */
Test(config, kernel_unpack)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k"), 0, "%s", err.msg);
	cr_assert_eq(cfg.kernel_unpack, KERNEL_UNPACK_HOST);
	config_free(&cfg);
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--kernel-unpack", "host"), 0, "%s",
		     err.msg);
	cr_assert_eq(cfg.kernel_unpack, KERNEL_UNPACK_HOST);
	config_free(&cfg);
	EXPECT_FAIL("bad --kernel-unpack 'auto': expected host or guest", "--kernel", "k",
		    "--kernel-unpack", "auto");
	EXPECT_FAIL("--kernel-unpack", "--kernel", "k", "--kernel-unpack");
	if (!arch_layout.kernel_self_unpack) {
		EXPECT_FAIL("--kernel-unpack guest: this architecture's kernels cannot "
			    "decompress themselves",
			    "--kernel", "k", "--kernel-unpack", "guest");
		return;
	}
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--kernel-unpack", "guest"), 0, "%s",
		     err.msg);
	cr_assert_eq(cfg.kernel_unpack, KERNEL_UNPACK_GUEST);
	config_free(&cfg);
}

/* --kernel-cache: on by default; on or off. */
Test(config, kernel_cache)
{
	struct vm_config cfg;
	struct kerr err = {{0}};

	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k"), 0, "%s", err.msg);
	cr_assert(cfg.kernel_cache);
	config_free(&cfg);
	cr_assert_eq(PARSE(&cfg, &err, "--kernel", "k", "--kernel-cache", "off"), 0, "%s", err.msg);
	cr_assert(!cfg.kernel_cache);
	config_free(&cfg);
	cr_assert_eq(
	    PARSE(&cfg, &err, "--kernel", "k", "--kernel-cache", "off", "--kernel-cache", "on"), 0,
	    "%s", err.msg);
	cr_assert(cfg.kernel_cache);
	config_free(&cfg);
	EXPECT_FAIL("bad --kernel-cache 'auto': expected on or off", "--kernel", "k",
		    "--kernel-cache", "auto");
	EXPECT_FAIL("bad --kernel-cache 'yes': expected on or off", "--kernel", "k",
		    "--kernel-cache", "yes");
	EXPECT_FAIL("--kernel-cache", "--kernel", "k", "--kernel-cache");
}
