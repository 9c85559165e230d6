/* kestrel: parse the command line, build the VM, run it, and report how it ended. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vmm/config.h"
#include "vmm/device_report.h"
#include "vmm/platform.h"
#include "vmm/seccomp.h"
#include "vmm/terminal.h"
#include "vmm/vm.h"

#define KESTREL_VERSION "0.1.0"

static int fail(const struct kerr *err)
{
	fprintf(stderr, "kestrel: %s\n", err->msg);
	return KESTREL_EXIT_USAGE;
}

static void serial_sink(void *opaque, const uint8_t *buf, size_t len)
{
	struct vm *vm = opaque;

	platform_serial_input(vm->platform, buf, len);
}

/* A thread that cannot load its filter must not run unfiltered: end the VM. */
static void sandbox_failed(void *opaque, const char *msg)
{
	vm_request_exit(opaque, KESTREL_EXIT_INTERNAL, "%s", msg);
}

/* Typed keys go to whichever device is the console. */
static terminal_sink_fn console_sink(const struct vm_config *cfg)
{
	return cfg->console == CONSOLE_VIRTIO ? pci_devices_console_input : serial_sink;
}

int main(int argc, char **argv)
{
	struct vm_config cfg;
	struct terminal term;
	struct kerr err = {{0}};
	struct vm vm;
	int status;

	if (config_parse(argc, argv, &cfg, &err)) {
		config_free(&cfg);
		return fail(&err);
	}
	if (cfg.help) {
		fputs(config_usage(), stdout);
		return 0;
	}
	if (cfg.version) {
		printf("kestrel %s\n", KESTREL_VERSION);
		return 0;
	}
	/* A console or socket peer that goes away must not kill the VMM. */
	signal(SIGPIPE, SIG_IGN);
	/* Before any thread exists, so every thread inherits the mask and signals reach the
	 * event loop's signalfd. */
	if (terminal_block_signals(&err))
		return fail(&err);
	if (vm_create(&vm, &cfg, &err) || vm_load_kernel(&vm, &cfg, &err) ||
	    sandbox_setup(cfg.seccomp, KESTREL_EXIT_SECCOMP, sandbox_failed, &vm, &err) ||
	    terminal_init(&term, &vm, console_sink(&cfg), &vm, cfg.shutdown_timeout, &err)) {
		vm_destroy(&vm);
		config_free(&cfg);
		sandbox_teardown();
		return fail(&err);
	}
	if (term.raw)
		sandbox_set_terminal(&term.saved);
	if (vm_start(&vm, &err)) {
		vm_request_exit(&vm, KESTREL_EXIT_INTERNAL, "%s", err.msg);
		status = vm_wait(&vm);
	} else {
		sandbox_enter(SANDBOX_MAIN);
		status = vm_wait(&vm);
	}
	terminal_restore(&term);
	if (cfg.verbose)
		device_report(&vm, STDERR_FILENO);
	if (cfg.verbose && vm.net_loop.batch_failed)
		fprintf(stderr,
			"kestrel: the network loop could not change its scheduling policy\n");
	if (cfg.verbose && vm.pci.nr_nics)
		fprintf(stderr,
			"kestrel: network loop: %llu switches to SCHED_OTHER, %llu back to "
			"SCHED_BATCH\n",
			(unsigned long long)vm.net_loop.policy.to_other,
			(unsigned long long)vm.net_loop.policy.to_batch);
	fprintf(stderr, "\nkestrel: %s (exit status %d)\n", vm.exit_reason, status);
	vm_destroy(&vm);
	config_free(&cfg);
	sandbox_teardown();
	return status;
}
